//! `wss://` with a private CA (`--ca`): the camera trusts exactly what it is
//! told to, and refuses a relay whose certificate it cannot verify.

mod common;

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::mpsc::channel;
use std::time::Duration;

use common::{SEC, Zerocam, temp_path};
use tungstenite::Message;

struct Pki {
    ca_pem: String,
    server: Arc<rustls::ServerConfig>,
}

fn pki() -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "zerocam test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    Pki {
        ca_pem: ca.pem(),
        server: Arc::new(server),
    }
}

/// A one-connection-at-a-time wss relay; reports the first binary frame.
fn serve(
    server: Arc<rustls::ServerConfig>,
) -> (u16, std::sync::mpsc::Receiver<Result<Vec<u8>, String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for tcp in listener.incoming().take(4) {
            let Ok(tcp) = tcp else { continue };
            tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let conn = rustls::ServerConnection::new(server.clone()).unwrap();
            let tls = rustls::StreamOwned::new(conn, tcp);
            match tungstenite::accept(tls) {
                Ok(mut ws) => loop {
                    match ws.read() {
                        Ok(Message::Binary(b)) => {
                            let _ = tx.send(Ok(b.to_vec()));
                            break;
                        }
                        Ok(_) => {}
                        Err(e) => {
                            let _ = tx.send(Err(e.to_string()));
                            break;
                        }
                    }
                },
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                }
            }
        }
    });
    (port, rx)
}

#[test]
fn wss_with_a_private_ca_streams() {
    let pki = pki();
    let ca = temp_path("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let (port, rx) = serve(pki.server);
    let url = format!("wss://localhost:{port}/ingest/t");
    let _cam = Zerocam::stream(&[
        "--relay",
        &url,
        "--camera",
        "t",
        "--size",
        "160x120",
        "--ca",
        ca.to_str().unwrap(),
    ]);
    let jpeg = rx
        .recv_timeout(20 * SEC)
        .expect("a frame over TLS")
        .expect("TLS session works");
    common::decode(&jpeg);
    let _ = std::fs::remove_file(ca);
}

#[test]
fn wss_without_the_ca_is_refused_by_the_camera() {
    let pki = pki();
    let (port, rx) = serve(pki.server);
    let url = format!("wss://localhost:{port}/ingest/t");
    let cam = Zerocam::stream(&["--relay", &url, "--camera", "t", "--size", "160x120"]);
    // The server sees the handshake fail (unknown CA), and the camera says why.
    let r = rx.recv_timeout(20 * SEC).expect("a connection attempt");
    assert!(r.is_err(), "must not stream to an unverified relay");
    let line = cam.wait_log("TLS: ", 10 * SEC).expect("logged");
    assert!(
        line.to_lowercase().contains("certificate") || line.contains("UnknownIssuer"),
        "{line}"
    );
}

#[test]
fn a_bad_ca_file_is_a_clear_config_error() {
    let bad = temp_path("bad.pem");
    std::fs::write(&bad, "not a certificate").unwrap();
    let mut cam = Zerocam::stream(&[
        "--relay",
        "wss://localhost:1/x",
        "--ca",
        bad.to_str().unwrap(),
    ]);
    let st = cam.wait_exit(10 * SEC).expect("exits");
    assert!(!st.success());
    assert!(cam.wait_log("relay.ca", SEC).is_some());
    let _ = std::fs::remove_file(bad);
}
