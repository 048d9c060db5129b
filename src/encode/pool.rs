//! Software encoding on more than one core (the Zero 2 W has four):
//! `source.encode_threads` workers, each with one input buffer and one
//! output buffer, so memory stays bounded whatever the camera does.
//!
//! The capture thread copies a raw frame into an idle worker's buffer (the
//! driver's buffer must go back to it) and goes on capturing; a frame that
//! finds every worker busy is dropped and counted, exactly as a frame that
//! waits for the single encoder would be stale. Workers put finished frames
//! into the latest-frame slot, which delivers in capture order: a frame
//! that finishes after a newer one was delivered is refused and counted
//! ([`crate::slot::Slot::put`]). With one thread, capture encodes inline
//! and this pool is not used.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{RawFormat, RawImage, encode_raw};
use crate::frame::Frame;
use crate::pipeline::Pipeline;
use crate::wire::com::FrameMeta;

/// One frame to encode, with its own copy of the pixels.
#[derive(Debug, Default)]
struct Job {
    meta: Option<FrameMeta>,
    epoch: u64,
    quality: u8,
    format: Option<RawFormat>,
    width: u32,
    height: u32,
    stride: usize,
    data: Vec<u8>,
}

#[derive(Debug, Default)]
struct Mailbox {
    job: Mutex<Job>,
    ready: Condvar,
    busy: AtomicBool,
}

/// The encoder workers.
pub struct Pool {
    mailboxes: Vec<Arc<Mailbox>>,
    threads: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
}

impl Pool {
    /// `n` workers putting their frames into `p`'s slot.
    pub fn new(n: usize, p: Arc<Pipeline>) -> std::io::Result<Pool> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut mailboxes = Vec::new();
        let mut threads = Vec::new();
        for i in 0..n {
            let mb = Arc::new(Mailbox::default());
            let (mb2, p2, stop2) = (mb.clone(), p.clone(), stop.clone());
            threads.push(
                std::thread::Builder::new()
                    .name(format!("encode-{i}"))
                    .spawn(move || work(&mb2, &p2, &stop2))?,
            );
            mailboxes.push(mb);
        }
        Ok(Pool {
            mailboxes,
            threads,
            stop,
        })
    }

    /// Workers in the pool.
    pub fn len(&self) -> usize {
        self.mailboxes.len()
    }

    /// Never empty: a pool has at least one worker.
    pub fn is_empty(&self) -> bool {
        self.mailboxes.is_empty()
    }

    /// Hands `img` to an idle worker (copying its pixels), to be encoded at
    /// `quality` and published with `meta` in pause epoch `epoch`. False when
    /// every worker is busy: the frame is not taken.
    pub fn submit(&self, img: &RawImage<'_>, meta: FrameMeta, epoch: u64, quality: u8) -> bool {
        let Some(mb) = self
            .mailboxes
            .iter()
            .find(|m| !m.busy.load(Ordering::Acquire))
        else {
            return false;
        };
        let mut job = mb.job.lock().unwrap_or_else(|p| p.into_inner());
        job.data.clear();
        job.data.extend_from_slice(img.data);
        job.meta = Some(meta);
        job.epoch = epoch;
        job.quality = quality;
        job.format = Some(img.format);
        job.width = img.width;
        job.height = img.height;
        job.stride = img.stride;
        mb.busy.store(true, Ordering::Release);
        mb.ready.notify_one();
        true
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for mb in &self.mailboxes {
            // Under the lock, so a worker between its check and its wait
            // cannot miss the wake-up.
            let _job = mb.job.lock().unwrap_or_else(|p| p.into_inner());
            mb.ready.notify_all();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn work(mb: &Mailbox, p: &Pipeline, stop: &AtomicBool) {
    let mut jpeg_hint = 16 * 1024;
    loop {
        let mut job = mb.job.lock().unwrap_or_else(|p| p.into_inner());
        while !mb.busy.load(Ordering::Acquire) {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            job = mb
                .ready
                .wait_timeout(job, Duration::from_millis(500))
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        let (Some(meta), Some(format)) = (job.meta, job.format) else {
            mb.busy.store(false, Ordering::Release);
            continue;
        };
        let t0 = Instant::now();
        let img = RawImage {
            format,
            width: job.width,
            height: job.height,
            stride: job.stride,
            data: &job.data,
        };
        let mut out = Vec::with_capacity(jpeg_hint);
        let c = &p.counters;
        match encode_raw(&img, job.quality, Some(&meta), &mut out) {
            Ok(()) => {
                c.record_encode_us(t0.elapsed().as_micros().min(u32::MAX as u128) as u32);
                jpeg_hint = out.len() + out.len() / 4;
                c.captured.fetch_add(1, Ordering::Relaxed);
                p.slot.put(Frame {
                    jpeg: out,
                    seq: meta.seq,
                    captured_at_us: meta.ts_us,
                    width: job.width,
                    height: job.height,
                    epoch: job.epoch,
                });
            }
            Err(e) => {
                c.encode_errors.fetch_add(1, Ordering::Relaxed);
                log::debug!("cannot encode frame: {e}");
            }
        }
        mb.busy.store(false, Ordering::Release);
    }
}
