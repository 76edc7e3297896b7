//! Ordered parallel block compression, shared by gzip and lz4.
//!
//! The caller's thread cuts the input into blocks; `threads` worker threads compress them; one
//! writer thread writes the results into the inner writer strictly in input order. For each
//! block the caller first queues a one-shot reply receiver on the bounded *order* channel (read
//! by the writer thread), then the job itself on the bounded *job* channel (read by the
//! workers). The writer thread waits for each reply in turn, so the output order is the input
//! order, and since the order channel is bounded, so is the number of blocks in flight (and
//! the memory) whatever the input size.
//!
//! Failures: a worker's error (or panic) reaches the writer thread through the reply; the
//! writer thread stops at the first error, which drops the order channel's receiver, so the
//! caller's next send fails at once (also when it was blocked on a full channel); the caller
//! then joins the threads and returns the writer thread's error. Workers never block on
//! output (one-slot reply channels) and end when the job channel closes.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, unbounded, Receiver, Sender};

use super::CompressWriter;

/// How one format compresses a block; the pipeline does the rest.
pub(crate) trait BlockCodec: Send + Sync + 'static {
    /// Per-worker state (a reusable compressor, say).
    type Worker: Send + 'static;
    /// State kept over the whole input in order by the caller's thread (a checksum that
    /// cannot be combined from blocks, say).
    type Seq: Send + 'static;

    /// Short name for thread names and error messages.
    const NAME: &'static str;
    /// How many bytes of preceding input each block gets as dictionary (0: none).
    const DICT: usize;
    /// Whether blocks' CRC-32s are computed (and combined for the trailer).
    const CRC: bool;

    fn new_worker(&self) -> io::Result<Self::Worker>;

    fn new_seq(&self) -> Self::Seq;

    /// Called with every block's data, in input order, before it goes to the workers.
    fn update_seq(&self, seq: &mut Self::Seq, data: &[u8]);

    /// Compresses `data` (preceded in the stream by `dict`) and appends the result to `out`.
    /// `last` is set for the final block of the stream (which may be empty).
    fn compress(
        &self,
        worker: &mut Self::Worker,
        dict: &[u8],
        data: &[u8],
        last: bool,
        out: &mut Vec<u8>,
    ) -> io::Result<()>;

    /// Bytes written before the first block.
    fn header(&self) -> Vec<u8>;

    /// Bytes written after the last block, given the sequential state, the CRC-32 of the
    /// whole input (0 unless `CRC`) and its length.
    fn trailer(&self, seq: Self::Seq, crc: u32, len: u64) -> Vec<u8>;
}

struct Job {
    data: Vec<u8>,
    dict: Vec<u8>,
    last: bool,
    reply: Sender<io::Result<Done>>,
}

struct Done {
    out: Vec<u8>,
    crc: Option<crc32fast::Hasher>,
    len: u64,
}

enum Order<S> {
    Block(Receiver<io::Result<Done>>),
    Flush(Sender<io::Result<()>>),
    Finish(S),
}

pub(crate) struct ParallelWriter<C: BlockCodec> {
    codec: Arc<C>,
    block_size: usize,
    cur: Vec<u8>,
    dict: Vec<u8>,
    /// `None` once finished.
    seq: Option<C::Seq>,
    order_tx: Option<Sender<Order<C::Seq>>>,
    job_tx: Option<Sender<Job>>,
    recycle_rx: Receiver<Vec<u8>>,
    writer: Option<JoinHandle<io::Result<()>>>,
    workers: Vec<JoinHandle<()>>,
    abort: Arc<AtomicBool>,
    /// Set once the pipeline failed: later calls report it again.
    failed: Option<(io::ErrorKind, String)>,
}

impl<C: BlockCodec> ParallelWriter<C> {
    pub(crate) fn new(
        codec: C,
        out: Box<dyn Write + Send>,
        threads: usize,
        block_size: usize,
    ) -> io::Result<Self> {
        let threads = threads.max(1);
        let block_size = block_size.max(1);
        let codec = Arc::new(codec);
        let (order_tx, order_rx) = bounded::<Order<C::Seq>>(2 * threads);
        let (job_tx, job_rx) = bounded::<Job>(threads);
        let (recycle_tx, recycle_rx) = unbounded::<Vec<u8>>();
        let abort = Arc::new(AtomicBool::new(false));

        let mut this = ParallelWriter {
            codec: codec.clone(),
            block_size,
            cur: Vec::new(),
            dict: Vec::new(),
            seq: Some(codec.new_seq()),
            order_tx: Some(order_tx),
            job_tx: Some(job_tx),
            recycle_rx,
            writer: None,
            workers: Vec::with_capacity(threads),
            abort: abort.clone(),
            failed: None,
        };
        // On an error below, dropping `this` closes the channels and joins what was started.
        for i in 0..threads {
            let worker = codec.new_worker()?;
            let codec = codec.clone();
            let job_rx = job_rx.clone();
            let recycle_tx = recycle_tx.clone();
            let handle = std::thread::Builder::new()
                .name(format!("{}-{i}", C::NAME))
                .spawn({
                    let abort = abort.clone();
                    move || worker_loop(&*codec, worker, job_rx, recycle_tx, &abort)
                })?;
            this.workers.push(handle);
        }
        let handle = std::thread::Builder::new()
            .name(format!("{}-out", C::NAME))
            .spawn(move || writer_loop(&*codec, out, order_rx, &abort))?;
        this.writer = Some(handle);
        Ok(this)
    }

    fn check_failed(&self) -> io::Result<()> {
        match &self.failed {
            Some((kind, msg)) => Err(io::Error::new(*kind, msg.clone())),
            None => Ok(()),
        }
    }

    /// Stops everything and returns the error that caused it (the writer thread's own error
    /// if it has one).
    fn fail(&mut self, fallback: &str) -> io::Error {
        self.order_tx = None;
        self.job_tx = None;
        let err = match self.join() {
            Err(e) => e,
            Ok(()) => io::Error::other(format!("{} compression: {fallback}", C::NAME)),
        };
        self.failed = Some((err.kind(), err.to_string()));
        err
    }

    /// Joins all threads; the channels must be closed already. Returns the writer thread's
    /// result.
    fn join(&mut self) -> io::Result<()> {
        let result = match self.writer.take() {
            Some(handle) => handle.join().unwrap_or_else(|_| {
                Err(io::Error::other(format!(
                    "{} compression: output thread panicked",
                    C::NAME
                )))
            }),
            None => Ok(()),
        };
        for handle in self.workers.drain(..) {
            let _ = handle.join();
        }
        result
    }

    /// A buffer for the next block: a recycled one if any.
    fn fresh_buffer(&self) -> Vec<u8> {
        match self.recycle_rx.try_recv() {
            Ok(mut buf) => {
                buf.clear();
                buf
            }
            Err(_) => Vec::with_capacity(self.block_size),
        }
    }

    /// Sends the current block to the workers.
    fn dispatch(&mut self, last: bool) -> io::Result<()> {
        let fresh = self.fresh_buffer();
        let data = std::mem::replace(&mut self.cur, fresh);
        if let Some(seq) = self.seq.as_mut() {
            self.codec.update_seq(seq, &data);
        }
        let dict = if C::DICT > 0 {
            let next = next_dict(&self.dict, &data, C::DICT);
            std::mem::replace(&mut self.dict, next)
        } else {
            Vec::new()
        };
        let (reply, reply_rx) = bounded(1);
        let job = Job {
            data,
            dict,
            last,
            reply,
        };
        let sent = match &self.order_tx {
            Some(tx) => tx.send(Order::Block(reply_rx)).is_ok(),
            None => false,
        };
        if !sent {
            return Err(self.fail("output thread ended"));
        }
        let sent = match &self.job_tx {
            Some(tx) => tx.send(job).is_ok(),
            None => false,
        };
        if !sent {
            return Err(self.fail("worker threads ended"));
        }
        Ok(())
    }

    fn send_order(&mut self, order: Order<C::Seq>) -> io::Result<()> {
        let sent = match &self.order_tx {
            Some(tx) => tx.send(order).is_ok(),
            None => false,
        };
        if sent {
            Ok(())
        } else {
            Err(self.fail("output thread ended"))
        }
    }
}

impl<C: BlockCodec> Write for ParallelWriter<C> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.check_failed()?;
        if buf.is_empty() {
            return Ok(0);
        }
        // A full block goes out only once more data follows, so that the last block of the
        // stream (compressed with `last` set) is never an empty one after a full one.
        if self.cur.len() >= self.block_size {
            self.dispatch(false)?;
        }
        if self.cur.capacity() == 0 {
            self.cur.reserve_exact(self.block_size);
        }
        let n = buf.len().min(self.block_size - self.cur.len());
        self.cur.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    /// Compresses what is buffered (as a block of its own) and waits until everything so far
    /// is written to the inner writer and that is flushed.
    fn flush(&mut self) -> io::Result<()> {
        self.check_failed()?;
        if !self.cur.is_empty() {
            self.dispatch(false)?;
        }
        let (ack, ack_rx) = bounded(1);
        self.send_order(Order::Flush(ack))?;
        match ack_rx.recv() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) | Err(_) => Err(self.fail("output thread ended")),
        }
    }
}

impl<C: BlockCodec> CompressWriter for ParallelWriter<C> {
    fn finish(mut self: Box<Self>) -> io::Result<()> {
        self.check_failed()?;
        self.dispatch(true)?;
        let seq = self.seq.take().expect("finish is called once");
        self.send_order(Order::Finish(seq))?;
        self.order_tx = None;
        self.job_tx = None;
        let result = self.join();
        if let Err(e) = &result {
            self.failed = Some((e.kind(), e.to_string()));
        }
        result
    }
}

impl<C: BlockCodec> Drop for ParallelWriter<C> {
    fn drop(&mut self) {
        // Abandoned (or finished, then nothing is left): stop writing, end the threads.
        self.abort.store(true, Ordering::SeqCst);
        self.order_tx = None;
        self.job_tx = None;
        let _ = self.join();
    }
}

/// The dictionary for the block after `data`: the last `size` bytes of `dict` + `data`.
fn next_dict(dict: &[u8], data: &[u8], size: usize) -> Vec<u8> {
    if data.len() >= size {
        data[data.len() - size..].to_vec()
    } else {
        let keep = (size - data.len()).min(dict.len());
        let mut next = Vec::with_capacity(keep + data.len());
        next.extend_from_slice(&dict[dict.len() - keep..]);
        next.extend_from_slice(data);
        next
    }
}

fn worker_loop<C: BlockCodec>(
    codec: &C,
    mut worker: C::Worker,
    jobs: Receiver<Job>,
    recycle: Sender<Vec<u8>>,
    abort: &AtomicBool,
) {
    for job in jobs.iter() {
        if abort.load(Ordering::SeqCst) {
            // Abandoned stream: drain the queue without compressing.
            continue;
        }
        let mut out = Vec::with_capacity(job.data.len() / 2 + 1024);
        let result = codec
            .compress(&mut worker, &job.dict, &job.data, job.last, &mut out)
            .map(|()| {
                let crc = C::CRC.then(|| {
                    let mut h = crc32fast::Hasher::new();
                    h.update(&job.data);
                    h
                });
                Done {
                    out,
                    crc,
                    len: job.data.len() as u64,
                }
            });
        // Either may fail when the writer thread or the caller has gone: nothing to do then.
        let _ = job.reply.send(result);
        let _ = recycle.send(job.data);
    }
}

fn writer_loop<C: BlockCodec>(
    codec: &C,
    mut out: Box<dyn Write + Send>,
    orders: Receiver<Order<C::Seq>>,
    abort: &AtomicBool,
) -> io::Result<()> {
    out.write_all(&codec.header())?;
    let mut crc = crc32fast::Hasher::new();
    let mut len = 0u64;
    for order in orders.iter() {
        match order {
            Order::Block(reply) => {
                let done = reply.recv().map_err(|_| {
                    io::Error::other(format!("{} compression: a worker thread panicked", C::NAME))
                })??;
                if abort.load(Ordering::SeqCst) {
                    return Ok(());
                }
                out.write_all(&done.out)?;
                if let Some(h) = &done.crc {
                    crc.combine(h);
                }
                len += done.len;
            }
            Order::Flush(ack) => match out.flush() {
                Ok(()) => {
                    let _ = ack.send(Ok(()));
                }
                Err(e) => {
                    let _ = ack.send(Err(io::Error::new(e.kind(), e.to_string())));
                    return Err(e);
                }
            },
            Order::Finish(seq) => {
                out.write_all(&codec.trailer(seq, crc.finalize(), len))?;
                return out.flush();
            }
        }
    }
    // The caller went away without finishing: leave the stream unfinished.
    Ok(())
}
