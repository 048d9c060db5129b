//! `zerocam`: the command line. It only wires things; the work lives in the
//! library's stage modules.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use zerocam::config::{self, Config, FileConfig, Overrides, keys};
use zerocam::{capture, device, logging, pipeline, stream};

#[derive(Parser)]
#[command(
    name = "zerocam",
    version,
    about = "Headless network camera: V4L2 → JPEG → WebSocket, and the relay it streams to"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Capture frames and stream them to a relay.
    Stream(Box<StreamArgs>),
    /// List V4L2 devices, their formats, sizes and rates, and the mode zerocam would pick.
    Probe {
        /// A device such as /dev/video0; all devices when omitted.
        device: Option<PathBuf>,
    },
    /// Capture one frame and write it as a JPEG file.
    Snapshot(SnapshotArgs),
    /// Validate a config file; exits non-zero naming the key and the reason.
    CheckConfig {
        /// The TOML file to check.
        file: PathBuf,
    },
    /// Run the relay: cameras stream in, browsers and tools watch.
    #[cfg(feature = "relay")]
    Relay(RelayArgs),
    /// The relay plus a camera streaming to it on loopback; prints the URL to open.
    #[cfg(feature = "relay")]
    Demo(DemoArgs),
    /// Print a signed camera token (for a relay with `server.secret_file`).
    #[cfg(feature = "relay")]
    Token(TokenArgs),
}

#[cfg(feature = "relay")]
#[derive(Args)]
struct RelayArgs {
    /// Address to listen on [default: 0.0.0.0:8080].
    #[arg(long)]
    listen: Option<String>,
    /// A camera token accepted for any camera id (repeatable).
    #[arg(long = "token")]
    tokens: Vec<String>,
    /// Join a cluster of relays through this NATS server
    /// (nats://HOST:PORT; overrides server.cluster.url).
    #[arg(long)]
    cluster: Option<String>,
    /// Config file; its [server] table holds the relay settings.
    #[arg(long)]
    config: Option<PathBuf>,
    /// error, warn, info, debug or trace (RUST_LOG refines it).
    #[arg(long)]
    log_level: Option<String>,
}

#[cfg(feature = "relay")]
#[derive(Args)]
struct DemoArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// `pattern` or a V4L2 device such as /dev/video0.
    #[arg(long, default_value = "pattern")]
    source: String,
    /// Frame size, WxH.
    #[arg(long)]
    size: Option<String>,
    /// Frames per second.
    #[arg(long)]
    fps: Option<u32>,
}

#[cfg(feature = "relay")]
#[derive(Args)]
struct TokenArgs {
    /// The camera id the token is for.
    #[arg(long)]
    camera: String,
    /// File holding the relay's HMAC secret.
    #[arg(long)]
    secret_file: PathBuf,
    /// Lifetime, e.g. 30d, 12h, 45m, 90s.
    #[arg(long, default_value = "30d")]
    ttl: String,
}

#[derive(Args, Default)]
struct SourceArgs {
    // (`pattern-mjpeg`, not in the help: the pattern replayed as MJPEG,
    // for benchmarks.)
    #[arg(long, help = keys::flag_help("source.device"))]
    source: Option<String>,
    #[arg(long, help = keys::flag_help("source.size"))]
    size: Option<String>,
    #[arg(long, help = keys::flag_help("source.fps"))]
    fps: Option<u32>,
    #[arg(long, help = keys::flag_help("source.quality"))]
    quality: Option<u8>,
    #[arg(long, help = keys::flag_help("source.format"))]
    format: Option<String>,
    #[arg(long, help = keys::flag_help("source.encode_threads"))]
    encode_threads: Option<u32>,
    #[arg(long, help = keys::flag_help("source.encoder"))]
    encoder: Option<String>,
}

#[derive(Args)]
struct StreamArgs {
    /// Config file [default: /etc/zerocam/zerocam.toml when present].
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long, help = keys::flag_help("relay.url"))]
    relay: Vec<String>,
    #[arg(long, help = keys::flag_help("camera"))]
    camera: Option<String>,
    #[arg(long, help = keys::flag_help("relay.token"))]
    token: Option<String>,
    #[command(flatten)]
    source: SourceArgs,
    #[arg(long, help = keys::flag_help("relay.protocol"))]
    protocol: Option<String>,
    #[arg(long, help = keys::flag_help("relay.topic"))]
    topic: Option<String>,
    #[arg(long, help = keys::flag_help("relay.heartbeat_interval"))]
    heartbeat: Option<f64>,
    #[arg(long, help = keys::flag_help("relay.stats_interval"))]
    stats_interval: Option<f64>,
    #[arg(long, help = keys::flag_help("relay.ca"))]
    ca: Option<PathBuf>,
    #[arg(long, help = keys::flag_help("relay.auth_subprotocol"))]
    auth_subprotocol: bool,
    #[arg(long, help = keys::flag_help("relay.adapt"))]
    adapt: Option<String>,
    #[arg(long, help = keys::flag_help("source.min_quality"))]
    min_quality: Option<u8>,
    /// error, warn, info, debug or trace (RUST_LOG refines it).
    #[arg(long)]
    log_level: Option<String>,
}

#[derive(Args)]
struct SnapshotArgs {
    /// Config file (its [source] section is used).
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(flatten)]
    source: SourceArgs,
    /// Output file.
    #[arg(short = 'o', long = "output")]
    output: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            // Plain stderr: the logger may not be installed yet (config
            // errors), and systemd sends stderr to the journal either way.
            // One line when it fits a serial console (100 columns with the
            // journal's prefix cut), else the chain of causes a line each.
            let one = format!("error: {e:#}");
            if one.chars().count() <= 100 || one.contains('\n') {
                // A message's own second line is a hint: indented.
                eprintln!("{}", one.replace('\n', "\n  "));
            } else {
                let mut chain = e.chain();
                if let Some(top) = chain.next() {
                    eprintln!("error: {top}");
                }
                for cause in chain {
                    eprintln!("  {cause}");
                }
            }
            ExitCode::FAILURE
        }
    }
}

/// Reads `--config FILE`, or the default file when it exists.
fn load_file(explicit: Option<&Path>) -> Result<FileConfig, config::ConfigError> {
    match explicit {
        Some(p) => config::read_file(p),
        None if Path::new(config::DEFAULT_CONFIG_PATH).exists() => {
            config::read_file(Path::new(config::DEFAULT_CONFIG_PATH))
        }
        None => Ok(FileConfig::default()),
    }
}

fn source_overrides(s: SourceArgs) -> Overrides {
    Overrides {
        source: s.source,
        size: s.size,
        fps: s.fps,
        quality: s.quality,
        format: s.format,
        encode_threads: s.encode_threads,
        encoder: s.encoder,
        ..Overrides::default()
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.cmd {
        Cmd::Stream(a) => {
            let file = load_file(a.config.as_deref());
            let o = Overrides {
                relay: a.relay,
                camera: a.camera,
                token: a.token,
                protocol: a.protocol,
                topic: a.topic,
                heartbeat: a.heartbeat,
                stats_interval: a.stats_interval,
                ca: a.ca,
                log_level: a.log_level,
                auth_subprotocol: a.auth_subprotocol,
                adapt: a.adapt,
                min_quality: a.min_quality,
                ..source_overrides(a.source)
            };
            // Config errors go to stderr before the logger exists; the
            // level itself may come from the file (the flag wins).
            let cfg = Config::build(file?, &o, true)?;
            preflight(&cfg, device::notify::watchdog_from_env())?;
            logging::init(cfg.log_level.as_deref());
            stream_main(cfg)
        }
        Cmd::Probe { device } => {
            logging::init(None);
            capture::probe(device.as_deref())?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Snapshot(a) => {
            logging::init(None);
            let file = load_file(a.config.as_deref())?;
            let cfg = Config::build(file, &source_overrides(a.source), false)?;
            zerocam::camera::snapshot(&cfg.source, &a.output)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::CheckConfig { file } => {
            let f = config::read_file(&file)?;
            #[cfg(feature = "relay")]
            if f.server.is_some() {
                zerocam::relay::ServerConfig::build(f.server.as_ref(), &Default::default())?;
            }
            if f.is_relay_only() {
                println!("{}: ok (relay settings only)", file.display());
                return Ok(ExitCode::SUCCESS);
            }
            // Exactly what `stream` checks before it starts, so a file
            // called ok here starts there.
            let cfg = Config::build(f, &Overrides::default(), true)?;
            preflight(&cfg, device::notify::watchdog_from_env())?;
            println!("{}: ok", file.display());
            println!(
                "camera {}, source {}, relay {}",
                cfg.camera,
                cfg.source.kind,
                stream::connect::shown(&cfg.relay.url)
            );
            if config::controls_checked_at_open(&cfg.source) {
                println!("[source.controls]: checked when the camera opens (it says what it has)");
            }
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(feature = "relay")]
        Cmd::Relay(a) => {
            logging::init(a.log_level.as_deref());
            let file = load_file(a.config.as_deref())?;
            let ignored = file.camera_parts();
            if !ignored.is_empty() {
                log::info!(
                    "config: ignoring {} (a camera's; the relay reads [server])",
                    ignored.join(", ")
                );
            }
            let o = zerocam::relay::RelayOverrides {
                listen: a.listen,
                tokens: a.tokens,
                cluster: a.cluster,
            };
            zerocam::relay::run(zerocam::relay::ServerConfig::build(
                file.server.as_ref(),
                &o,
            )?)?;
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(feature = "relay")]
        Cmd::Demo(a) => {
            logging::init(None);
            let listen = a.listen.parse().map_err(|_| {
                anyhow::anyhow!(
                    "--listen: `{}` is not an address like 127.0.0.1:8080",
                    a.listen
                )
            })?;
            zerocam::demo::run(zerocam::demo::DemoOptions {
                listen,
                source: a.source,
                size: a.size,
                fps: a.fps,
            })?;
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(feature = "relay")]
        Cmd::Token(a) => {
            println!(
                "{}",
                zerocam::relay::make_token(&a.camera, &a.secret_file, &a.ttl)?
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The checks `stream` makes before it starts, beyond the config's own:
/// the source's controls where they can be checked without the camera, the
/// TLS material for `wss://` and, under a systemd watchdog, timeouts it
/// would contradict. `check-config` runs the same.
fn preflight(cfg: &Config, watchdog: Option<std::time::Duration>) -> anyhow::Result<()> {
    capture::check_controls(&cfg.source)?;
    if cfg.relay.relays().iter().any(|u| u.starts_with("wss://")) {
        stream::connect::tls_config(cfg.relay.ca.as_deref())?;
    }
    if let Some(w) = watchdog {
        config::check_watchdog(&cfg.relay, w)?;
    }
    Ok(())
}

/// SIGTERM/SIGINT ask the pipeline to stop and wake the stream loop, which
/// closes the socket with 1001 and returns; a second signal exits at once.
fn install_signal_handlers(p: &std::sync::Arc<pipeline::Pipeline>) -> anyhow::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    for sig in [SIGTERM, SIGINT] {
        let p = p.clone();
        // SAFETY: the handler only does async-signal-safe work: an atomic
        // load/store, a write(2) to the waker socket, or _exit(2).
        unsafe {
            signal_hook::low_level::register(sig, move || {
                if p.controls.shutting_down() {
                    signal_hook::low_level::exit(130);
                }
                p.controls.request_shutdown();
                p.waker.wake();
            })
        }?;
    }
    Ok(())
}

fn stream_main(cfg: Config) -> anyhow::Result<ExitCode> {
    // Two lines, each within a serial console's width (a URL may be long).
    log::info!(
        "zerocam {}, camera {}: {} {}x{}@{}",
        zerocam::VERSION,
        cfg.camera,
        cfg.source.kind,
        cfg.source.width,
        cfg.source.height,
        cfg.source.fps
    );
    let urls = cfg.relay.relays();
    for (i, url) in urls.iter().enumerate() {
        let n = if urls.len() > 1 {
            format!(" {}", i + 1)
        } else {
            String::new()
        };
        let shown = stream::connect::shown(url);
        log::info!("relay{n}: {shown} ({})", cfg.relay.protocol);
    }
    let camera = zerocam::camera::Camera::start(&cfg)?;
    install_signal_handlers(camera.pipeline())?;
    let t = camera.wait()?;

    // Two lines, each within a serial console's width.
    log::info!(
        "stopped: {} captured, {} sent, {} dropped, {} corrupt",
        t.captured,
        t.sent,
        t.dropped,
        t.corrupt
    );
    log::info!(
        "stopped: {} source errors, {} reconnects",
        t.source_errors,
        t.reconnects
    );
    Ok(ExitCode::SUCCESS)
}
