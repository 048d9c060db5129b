// Headless Chromium against the relay's viewer page: starts `zerocam demo`
// on a free port (or uses ZEROCAM_URL), opens `/`, and checks that the camera
// image is really live: it decodes (naturalWidth > 0), its pixels change, and
// the frame counter and latency readout advance. Screenshots go to artifacts/.
import { spawn } from "node:child_process";
import { mkdirSync, existsSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../..");
const artifacts = join(root, "artifacts");
const HANG_MS = 30000;

// Every process this test starts, killed however the test ends (a failed
// check, Ctrl-C, a CI timeout's SIGTERM), so no camera is left streaming.
const children = new Set();
function start(bin, args) {
  const child = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"] });
  children.add(child);
  child.on("exit", () => children.delete(child));
  return child;
}
function killChildren() {
  for (const c of children) c.kill("SIGTERM");
}
process.on("exit", killChildren);
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(sig, () => {
    killChildren();
    process.exit(1);
  });
}

function fail(msg) {
  console.error("browser test FAILED: " + msg);
  process.exitCode = 1;
  throw new Error(msg);
}

function findBinary() {
  if (process.env.ZEROCAM_BIN) return process.env.ZEROCAM_BIN;
  for (const p of ["target/release/zerocam", "target/debug/zerocam"]) {
    if (existsSync(join(root, p))) return join(root, p);
  }
  fail("no zerocam binary; build it first (cargo build) or set ZEROCAM_BIN");
}

// Starts `zerocam demo --listen 127.0.0.1:0` and resolves with its URL.
function startDemo() {
  const bin = findBinary();
  const child = start(bin, ["demo", "--listen", "127.0.0.1:0", "--size", "640x480", "--fps", "15"]);
  child.stderr.on("data", (d) => process.stderr.write("[demo] " + d));
  const url = new Promise((ok, bad) => {
    let out = "";
    const timer = setTimeout(() => bad(new Error("demo printed no URL within 30 s")), HANG_MS);
    child.stdout.on("data", (d) => {
      out += d;
      process.stdout.write("[demo] " + d);
      const m = out.match(/open (http:\/\/\S+)/);
      if (m) {
        clearTimeout(timer);
        ok(m[1]);
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      bad(new Error("demo exited early with " + code));
    });
  });
  return { child, url };
}

// Starts `zerocam relay` with admin auth and a pattern camera streaming to
// it; resolves with the relay's base URL.
function startRelayAndCamera() {
  const bin = findBinary();
  mkdirSync(join(artifacts, "browser"), { recursive: true });
  const cfg = join(artifacts, "browser", "relay.toml");
  // Viewer tokens too: the page carries ?token=view on every URL, and the
  // admin's token (the header) must still be seen on its settings POSTs.
  writeFileSync(cfg, '[server]\npause_when_unwatched = false\n[server.viewers]\ntokens = ["view"]\n[server.admin]\ntokens = ["adm"]\n');
  const relay = start(bin, ["relay", "--listen", "127.0.0.1:0", "--config", cfg]);
  const procs = [relay];
  const url = new Promise((ok, bad) => {
    let err = "";
    let started = false;
    const timer = setTimeout(() => bad(new Error("relay printed no address within 30 s")), HANG_MS);
    relay.stderr.on("data", (d) => {
      process.stderr.write("[relay] " + d);
      if (started) return;
      err += d;
      const m = err.match(/relay listening on (http:\/\/[^/\s]+)\//);
      if (m) {
        started = true;
        clearTimeout(timer);
        const cam = start(bin, ["stream", "--source", "pattern", "--size", "320x240", "--fps", "15",
          "--camera", "pat", "--relay", m[1].replace("http:", "ws:") + "/ingest/pat"]);
        cam.stderr.on("data", (d) => process.stderr.write("[camera] " + d));
        procs.push(cam);
        ok(m[1] + "/");
      }
    });
    relay.on("exit", (code) => { clearTimeout(timer); bad(new Error("relay exited early with " + code)); });
  });
  return { procs, url };
}

// Mean luma of the left tenth of the shown image (the pattern's white bar
// when not mirrored, its black one when mirrored).
async function leftEdge(page) {
  return page.evaluate(() => {
    const img = document.querySelector(".card img.frame");
    const c = document.createElement("canvas");
    c.width = 80; c.height = 60;
    const g = c.getContext("2d");
    g.drawImage(img, 0, 0, 80, 60);
    const px = g.getImageData(0, 20, 8, 10).data;
    let sum = 0;
    for (let i = 0; i < px.length; i += 4) sum += (px[i] * 3 + px[i + 1] * 6 + px[i + 2]) / 10;
    return sum / (px.length / 4);
  });
}

// Frames shown per second, measured over `ms`.
async function measuredFps(page, ms) {
  const f0 = await page.evaluate(() => Number(document.querySelector(".card").dataset.frames));
  await page.waitForTimeout(ms);
  const f1 = await page.evaluate(() => Number(document.querySelector(".card").dataset.frames));
  return (f1 - f0) * 1000 / ms;
}

// The settings panel drives the camera for real: a wrong admin token (its
// refusal stays on screen), fps, a flip, the admin token prompt, viewer
// tokens beside it, and the full-screen view.
async function settingsTest(browser) {
  const rig = startRelayAndCamera();
  try {
    const url = (await rig.url) + "?token=view";
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    let prompts = 0;
    // The first answer is wrong, as a user's typo would be.
    page.on("dialog", async (d) => { prompts += 1; await d.accept(prompts === 1 ? "typo" : "adm"); });
    await page.goto(url, { timeout: HANG_MS });
    await page.waitForFunction(() => {
      const card = document.querySelector(".card");
      return card && Number(card.dataset.frames) > 5;
    }, null, { timeout: HANG_MS });
    // Collapsed by default; opening it shows what the camera confirmed.
    if (await page.evaluate(() => document.querySelector("details.settings").open)) fail("settings panel open by default");
    await page.click("details.settings summary");
    await page.waitForSelector("details.settings input[name=fps]", { timeout: HANG_MS });
    const before = await measuredFps(page, 2000);
    console.log("settings: fps before " + before.toFixed(1));
    const setFps = (n) => page.evaluate((n) => {
      const i = document.querySelector("details.settings input[name=fps]");
      i.value = String(n);
      i.dispatchEvent(new Event("change"));
    }, n);
    // A wrong token: the refusal is shown, and still shown a while later
    // (it once was wiped 5 ms after it appeared).
    await setFps(3);
    await page.waitForFunction(() => document.querySelector("details.settings .status").textContent.includes("admin token not accepted"), null, { timeout: HANG_MS });
    await page.waitForTimeout(1500);
    const still = await page.textContent("details.settings .status");
    if (!still.includes("admin token not accepted")) fail("the refusal was wiped: status now '" + still + "'");
    await page.screenshot({ path: join(artifacts, "viewer-settings-refused.png") });
    // fps 3 again: the stored wrong token meets 403, the page asks again.
    await setFps(3);
    await page.waitForFunction(() => document.querySelector("details.settings .status").textContent === "applied", null, { timeout: HANG_MS });
    if (prompts !== 2) fail("expected two admin token prompts, got " + prompts);
    const confirmed = await page.evaluate(() => document.querySelector("details.settings input[name=fps]").value);
    if (confirmed !== "3") fail("the panel shows fps " + confirmed + " after the change");
    await page.waitForTimeout(1500);
    const after = await measuredFps(page, 4000);
    console.log("settings: fps after " + after.toFixed(1));
    if (!(before > 9 && after > 1.5 && after < 4.5)) fail(`measured fps did not follow: ${before.toFixed(1)} → ${after.toFixed(1)}`);
    // Flip: the image follows (the bright bar moves from left to right).
    const l0 = await leftEdge(page);
    await page.click("details.settings input[name=hflip]");
    await page.waitForFunction(() => document.querySelector("details.settings input[name=hflip]").checked, null, { timeout: HANG_MS });
    let l1 = l0;
    const t0 = Date.now();
    while (l1 > 80 && Date.now() - t0 < HANG_MS) { await page.waitForTimeout(300); l1 = await leftEdge(page); }
    console.log(`settings: left edge luma ${l0.toFixed(0)} → ${l1.toFixed(0)} after hflip`);
    if (!(l0 > 120 && l1 < 80)) fail(`the image did not flip (left edge ${l0.toFixed(0)} → ${l1.toFixed(0)})`);
    if (prompts !== 2) fail("the token was asked for again");
    // Full screen on a click; Escape leaves it.
    await page.click(".card img.frame");
    if (!(await page.evaluate(() => document.querySelector(".card").classList.contains("full")))) fail("no full-screen view");
    await page.screenshot({ path: join(artifacts, "viewer-settings-full.png") });
    await page.keyboard.press("Escape");
    if (await page.evaluate(() => document.querySelector(".card").classList.contains("full"))) fail("Escape did not leave full screen");
    await page.screenshot({ path: join(artifacts, "viewer-settings.png") });
    if (errors.length) fail("page errors: " + errors.join("; "));
    console.log("settings panel ok");
    await phoneFullScreen(browser, url);
  } finally {
    for (const p of rig.procs) p.kill("SIGTERM");
  }
}

// On a phone (no Escape key): full screen has a visible way out, and the
// back gesture leaves it too.
async function phoneFullScreen(browser, url) {
  const phone = await browser.newPage({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
  await phone.goto(url, { timeout: HANG_MS });
  await phone.waitForFunction(() => Number((document.querySelector(".card") || {dataset: {}}).dataset.frames) > 0, null, { timeout: HANG_MS });
  const full = () => phone.evaluate(() => document.querySelector(".card").classList.contains("full"));
  await phone.tap(".card img.frame");
  if (!(await full())) fail("phone: no full-screen view");
  if (!(await phone.isVisible(".card .leave"))) fail("phone: no visible way out of full screen");
  await phone.screenshot({ path: join(artifacts, "viewer-phone-full.png") });
  await phone.tap(".card .leave");
  if (await full()) fail("phone: the close button did not leave full screen");
  await phone.tap(".card img.frame");
  await phone.goBack();
  await phone.waitForFunction(() => !document.querySelector(".card").classList.contains("full"), null, { timeout: HANG_MS });
  if (!(await phone.isVisible(".card img.frame"))) fail("phone: back left the page, not full screen");
  await phone.close();
  console.log("phone full screen ok");
}

// The demo's settings panel works out of the box: no token to configure.
async function demoSettingsTest(page) {
  let prompts = 0;
  page.on("dialog", async (d) => { prompts += 1; await d.dismiss(); });
  await page.click("details.settings summary");
  await page.waitForSelector("details.settings input[name=quality]", { timeout: HANG_MS });
  await page.evaluate(() => {
    const i = document.querySelector("details.settings input[name=quality]");
    i.value = "55";
    i.dispatchEvent(new Event("change"));
  });
  await page.waitForFunction(() => document.querySelector("details.settings .status").textContent === "applied", null, { timeout: HANG_MS });
  if (prompts !== 0) fail("the demo asked for an admin token");
  const q = await page.evaluate(() => document.querySelector("details.settings input[name=quality]").value);
  if (q !== "55") fail("demo: the panel shows quality " + q + " after the change");
  console.log("demo settings panel ok");
}

async function readout(page) {
  return page.evaluate(() => {
    const card = document.querySelector(".card[data-camera]");
    if (!card) return null;
    const img = card.querySelector("img.frame");
    let hash = 0;
    if (img.naturalWidth > 0) {
      const c = document.createElement("canvas");
      c.width = 64;
      c.height = 48;
      const g = c.getContext("2d");
      g.drawImage(img, 0, 0, 64, 48);
      const px = g.getImageData(0, 0, 64, 48).data;
      for (let i = 0; i < px.length; i += 4) hash = (hash * 31 + px[i] + px[i + 1] * 3 + px[i + 2] * 7) >>> 0;
    }
    return {
      camera: card.dataset.camera,
      frames: Number(card.dataset.frames),
      latency: card.dataset.latency === undefined ? null : Number(card.dataset.latency),
      latencyText: card.querySelector(".info").textContent,
      naturalWidth: img.naturalWidth,
      src: img.src,
      hash,
    };
  });
}

async function main() {
  mkdirSync(artifacts, { recursive: true });
  let demo = null;
  let url = process.env.ZEROCAM_URL;
  if (!url) {
    demo = startDemo();
    url = await demo.url;
  }
  console.log("viewer page: " + url);
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
    await page.goto(url, { timeout: HANG_MS });
    await page.waitForFunction(() => {
      const img = document.querySelector(".card img.frame");
      return img && img.naturalWidth > 0 && Number(img.closest(".card").dataset.frames) > 0;
    }, null, { timeout: HANG_MS });
    const a = await readout(page);
    console.log("first readout:", JSON.stringify(a));
    // Wait for the picture to move on: more frames, a new blob, new pixels.
    await page.waitForFunction((prev) => {
      const card = document.querySelector(".card[data-camera]");
      return card && Number(card.dataset.frames) >= prev + 10;
    }, a.frames, { timeout: HANG_MS });
    let b = await readout(page);
    const t0 = Date.now();
    while (b.hash === a.hash && Date.now() - t0 < HANG_MS) {
      await page.waitForTimeout(200);
      b = await readout(page);
    }
    console.log("later readout:", JSON.stringify(b));
    if (!(b.naturalWidth > 0)) fail("image has no naturalWidth");
    if (!(b.frames > a.frames)) fail(`frame counter did not advance (${a.frames} → ${b.frames})`);
    if (b.src === a.src) fail("image source did not change");
    if (b.hash === a.hash) fail("image pixels did not change");
    if (b.latency === null || !Number.isFinite(b.latency)) fail("no latency readout (COM ts not parsed)");
    if (!/latency \d+ ms/.test(b.latencyText)) fail("latency readout not shown: " + b.latencyText);
    const live = await page.textContent("#summary");
    if (!/1 camera live/.test(live)) fail("summary says: " + live);
    if (errors.length) fail("page errors: " + errors.join("; "));
    // Old object URLs are revoked: fetching the first blob must fail now.
    const revoked = await page.evaluate(async (u) => {
      try { await fetch(u); return false; } catch { return true; }
    }, a.src);
    if (!revoked) fail("old object URL was not revoked");
    await page.screenshot({ path: join(artifacts, "viewer.png") });
    // The MJPEG stream plays in the browser too (multipart/x-mixed-replace in an <img>).
    const mjpegWidth = await page.evaluate(async (id) => {
      const img = new Image();
      img.src = "/cameras/" + encodeURIComponent(id) + "/mjpeg" + location.search;
      document.body.appendChild(img);
      for (let i = 0; i < 100 && img.naturalWidth === 0; i++) await new Promise((r) => setTimeout(r, 100));
      const w = img.naturalWidth;
      img.remove();
      return w;
    }, b.camera);
    if (!(mjpegWidth > 0)) fail("the MJPEG stream did not play in an <img>");
    // The same page on a phone-sized screen.
    const phone = await browser.newPage({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
    await phone.goto(url, { timeout: HANG_MS });
    await phone.waitForFunction(() => {
      const img = document.querySelector(".card img.frame");
      return img && img.naturalWidth > 0;
    }, null, { timeout: HANG_MS });
    const overflow = await phone.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
    if (overflow) fail("page is wider than a phone screen");
    await phone.screenshot({ path: join(artifacts, "viewer-phone.png") });
    if (demo) await demoSettingsTest(page);
    await settingsTest(browser);
    console.log(`browser test ok: ${b.frames} frames shown, latency ${b.latency} ms; screenshots in artifacts/`);
  } finally {
    await browser.close();
    if (demo) {
      demo.child.kill("SIGTERM");
    }
  }
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : e);
  process.exitCode = 1;
  process.exit(1);
});
