//! The measured work and the timing harness of `stowage benchmark`.
//!
//! Each workload makes one runner per thread (its own contexts and buffers). A step of the runner
//! does one unit of work (one buffer) and returns the bytes of data it processed, except for the
//! streaming compressors (gzip, xz): each thread feeds one endless stream a slice per step, and
//! only the final step, which finishes the stream, counts its bytes, as an encoder may still hold
//! data it has not compressed yet. The harness warms every runner up with one step, starts all
//! threads together, runs steps until the time is up and then the final step, and takes the bytes
//! over the time until the final step ended (a little more than the time asked for, as in PBS's
//! benchmark). The threads run at the same time, so the figure for N threads is the sum of their
//! rates.

use std::hint::black_box;
use std::io::Write;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use aes_gcm::aead::{AeadInPlace, KeyInit, Nonce};
use aes_gcm::Aes256Gcm;
use anyhow::{anyhow, ensure, Result};
use stowage_format::blob::ZSTD_LEVEL;
use stowage_format::{sha256, BlobEncoder};
use stowage_types::Digest;

/// Buffer of the SHA-256 measurement (as PBS).
const SHA_BUFFER: usize = 1 << 20;
/// Buffer of every other measurement: one fixed-size chunk.
const CHUNK: usize = 4 << 20;
/// Slice fed to the streaming compressors (gzip, xz) at a time.
const STREAM_STEP: usize = 256 << 10;
/// The counter sequence the streaming compressors cycle through: longer than xz's dictionary
/// (8 MiB at preset 6), so that no compressor finds the previous cycle.
const STREAM_DATA: usize = 16 << 20;
/// AES-256 key of the encryption measurement: any fixed 32 bytes do.
const AES_KEY: [u8; 32] = *b"stowage benchmark key, not real!";

/// The work of one thread, a step at a time.
pub trait Step {
    /// Does one step; returns the bytes of data it processed completely.
    fn step(&mut self) -> Result<usize>;
    /// Completes the work under way when the time is up; returns the bytes that completes.
    fn finish(&mut self) -> Result<usize> {
        Ok(0)
    }
    /// Drops the work under way, untimed (after the warm-up step).
    fn restart(&mut self) {}
}

/// A step that completes its unit of work.
impl<F: FnMut() -> Result<usize>> Step for F {
    fn step(&mut self) -> Result<usize> {
        self()
    }
}

pub type Runner<'a> = Box<dyn Step + 'a>;

pub struct Workload<'a> {
    /// Machine-readable name (JSON).
    pub name: &'static str,
    /// Row label; PBS's label for the rows PBS has.
    pub label: &'static str,
    /// PBS's reference ("top") value in MB/s, for the rows PBS has.
    pub reference: Option<f64>,
    make: Box<dyn Fn() -> Result<Runner<'a>> + Sync + 'a>,
}

/// The test data, shared read-only by every thread.
pub struct TestData {
    /// PBS's test data: the u32-LE counter sequence 0, 1, 2, ... (compressible); its first
    /// `CHUNK` bytes are the buffer of every measurement but the streaming compressors'.
    counter: Vec<u8>,
    /// Pseudo-random bytes (incompressible).
    random: Vec<u8>,
    counter_zstd: Vec<u8>,
    random_zstd: Vec<u8>,
    /// `counter` as a compressed chunk (DataBlob), and its digest.
    chunk: Vec<u8>,
    digest: Digest,
}

impl TestData {
    pub fn new() -> Result<TestData> {
        let counter: Vec<u8> = (0..(STREAM_DATA / 4) as u32)
            .flat_map(u32::to_le_bytes)
            .collect();
        let random = random_bytes(0x5eed_0f57_0a6e, CHUNK);
        let counter_zstd = zstd::bulk::compress(&counter[..CHUNK], ZSTD_LEVEL)?;
        let random_zstd = zstd::bulk::compress(&random, ZSTD_LEVEL)?;
        let mut encoder = BlobEncoder::new()?;
        let mut chunk = Vec::new();
        let compressed = encoder.encode_into(&counter[..CHUNK], &mut chunk)?;
        ensure!(compressed, "the benchmark chunk did not compress");
        let digest = sha256(&counter[..CHUNK]);
        Ok(TestData {
            counter,
            random,
            counter_zstd,
            random_zstd,
            chunk,
            digest,
        })
    }
}

/// splitmix64: fast, and its output does not compress.
fn random_bytes(mut state: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(len);
    out
}

fn workload<'a>(
    name: &'static str,
    label: &'static str,
    reference: Option<f64>,
    make: impl Fn() -> Result<Runner<'a>> + Sync + 'a,
) -> Workload<'a> {
    Workload {
        name,
        label,
        reference,
        make: Box::new(make),
    }
}

fn zstd_compress(data: &[u8]) -> Result<Runner<'_>> {
    let mut compressor = zstd::bulk::Compressor::new(ZSTD_LEVEL)?;
    let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(data.len()));
    Ok(Box::new(move || {
        out.clear();
        compressor.compress_to_buffer(black_box(data), &mut out)?;
        black_box(&out);
        Ok(data.len())
    }))
}

/// Counts the decompressed bytes, as PBS does.
fn zstd_decompress<'a>(frame: &'a [u8], plain_len: usize) -> Result<Runner<'a>> {
    let mut decompressor = zstd::bulk::Decompressor::new()?;
    let mut out = Vec::with_capacity(plain_len);
    Ok(Box::new(move || {
        out.clear();
        decompressor.decompress_to_buffer(black_box(frame), &mut out)?;
        ensure!(
            out.len() == plain_len,
            "zstd decompressed to a wrong length"
        );
        black_box(&out);
        Ok(plain_len)
    }))
}

/// Where compressed data goes: counted, then dropped.
#[derive(Default)]
struct Sink(u64);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += black_box(buf).len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Compresses one endless stream (as when compressing a large image), cycling through `data` a
/// `STREAM_STEP` slice per step; `finish` ends the stream and counts everything written into it.
struct StreamCompress<'a, E, S, F> {
    data: &'a [u8],
    start: S,
    end: F,
    encoder: Option<E>,
    pos: usize,
    fed: usize,
}

impl<'a, E, S, F> StreamCompress<'a, E, S, F>
where
    E: Write + 'a,
    S: Fn(Sink) -> E + 'a,
    F: Fn(E) -> std::io::Result<Sink> + 'a,
{
    fn runner(data: &'a [u8], start: S, end: F) -> Runner<'a> {
        Box::new(StreamCompress {
            data,
            start,
            end,
            encoder: None,
            pos: 0,
            fed: 0,
        })
    }
}

impl<E, S, F> Step for StreamCompress<'_, E, S, F>
where
    E: Write,
    S: Fn(Sink) -> E,
    F: Fn(E) -> std::io::Result<Sink>,
{
    fn step(&mut self) -> Result<usize> {
        let encoder = match &mut self.encoder {
            Some(encoder) => encoder,
            None => self.encoder.insert((self.start)(Sink::default())),
        };
        if self.pos >= self.data.len() {
            self.pos = 0;
        }
        let end = (self.pos + STREAM_STEP).min(self.data.len());
        encoder.write_all(black_box(&self.data[self.pos..end]))?;
        self.fed += end - self.pos;
        self.pos = end;
        Ok(0)
    }

    fn finish(&mut self) -> Result<usize> {
        if let Some(encoder) = self.encoder.take() {
            black_box((self.end)(encoder)?.0);
        }
        Ok(std::mem::take(&mut self.fed))
    }

    fn restart(&mut self) {
        self.encoder = None;
        self.pos = 0;
        self.fed = 0;
    }
}

/// Every measurement, in table order: PBS's rows first.
pub fn workloads(data: &TestData) -> Vec<Workload<'_>> {
    let counter = &data.counter[..CHUNK];
    let random = &data.random[..];
    vec![
        workload(
            "sha256",
            "SHA256 checksum computation speed",
            Some(2022.0),
            move || {
                let buf = &counter[..SHA_BUFFER];
                Ok(Box::new(move || {
                    black_box(sha256(black_box(buf)));
                    Ok(buf.len())
                }))
            },
        ),
        workload(
            "zstd_compress",
            "ZStd level 1 compression speed",
            Some(752.0),
            move || zstd_compress(counter),
        ),
        workload(
            "zstd_decompress",
            "ZStd level 1 decompression speed",
            Some(1198.0),
            move || zstd_decompress(&data.counter_zstd, counter.len()),
        ),
        workload(
            "chunk_verify",
            "Chunk verification speed",
            Some(758.0),
            move || {
                let codec = &stowage_core::PLAIN;
                let mut decoder = stowage_core::ChunkCodec::decoder(codec)?;
                let mut out = Vec::with_capacity(CHUNK);
                Ok(Box::new(move || {
                    stowage_core::verify_chunk(
                        codec,
                        &mut *decoder,
                        &data.digest,
                        black_box(&data.chunk),
                        CHUNK,
                        &mut out,
                    )?;
                    black_box(&out);
                    Ok(CHUNK)
                }))
            },
        ),
        workload(
            "aes256_gcm",
            "AES256 GCM encryption speed",
            Some(3645.0),
            move || {
                let cipher = Aes256Gcm::new_from_slice(&AES_KEY)
                    .map_err(|_| anyhow!("bad AES-256 key length"))?;
                let mut buf = counter.to_vec();
                let mut count = 0u64;
                Ok(Box::new(move || {
                    count += 1;
                    let mut iv = [0u8; 12];
                    iv[..8].copy_from_slice(&count.to_le_bytes());
                    let nonce = Nonce::<Aes256Gcm>::from(iv);
                    let tag = cipher
                        .encrypt_in_place_detached(&nonce, b"", black_box(&mut buf[..]))
                        .map_err(|_| anyhow!("AES-256-GCM encryption failed"))?;
                    black_box((tag, &buf));
                    Ok(buf.len())
                }))
            },
        ),
        workload(
            "zstd_compress_incompressible",
            "ZStd level 1 compression speed (incompressible)",
            None,
            move || zstd_compress(random),
        ),
        workload(
            "zstd_decompress_incompressible",
            "ZStd level 1 decompression speed (incompressible)",
            None,
            move || zstd_decompress(&data.random_zstd, random.len()),
        ),
        workload("gzip", "gzip level 6 compression speed", None, move || {
            Ok(StreamCompress::runner(
                &data.counter,
                |out| flate2::write::GzEncoder::new(out, flate2::Compression::new(6)),
                |encoder| encoder.finish(),
            ))
        }),
        workload("xz", "xz preset 6 compression speed", None, move || {
            Ok(StreamCompress::runner(
                &data.counter,
                |out| liblzma::write::XzEncoder::new(out, 6),
                |encoder| encoder.finish(),
            ))
        }),
    ]
}

/// Runs `work` on `threads` threads at once for about `duration`; returns the summed throughput
/// in MB/s (10^6 bytes of data per second).
pub fn measure(work: &Workload<'_>, threads: usize, duration: Duration) -> Result<f64> {
    let barrier = Barrier::new(threads);
    let results: Vec<Result<(u64, Duration)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    // Set up and warm up once, untimed; wait at the barrier even on failure so
                    // that the other threads do not wait forever.
                    let ready = (work.make)().and_then(|mut run| {
                        run.step()?;
                        run.restart();
                        Ok(run)
                    });
                    barrier.wait();
                    let mut run = ready?;
                    let start = Instant::now();
                    let mut bytes = 0u64;
                    loop {
                        bytes += run.step()? as u64;
                        if start.elapsed() >= duration {
                            break;
                        }
                    }
                    bytes += run.finish()? as u64;
                    Ok((bytes, start.elapsed()))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow!("a benchmark thread panicked")))
            })
            .collect()
    });
    let mut rate = 0.0;
    for r in results {
        let (bytes, elapsed) = r?;
        rate += bytes as f64 / elapsed.as_secs_f64();
    }
    Ok(rate / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_data_is_pbs_counter_sequence() {
        let data = TestData::new().unwrap();
        assert_eq!(data.counter.len(), STREAM_DATA);
        assert_eq!(&data.counter[..8], &[0, 0, 0, 0, 1, 0, 0, 0]);
        assert_eq!(&data.counter[4 * 258..4 * 259], &[2, 1, 0, 0]);
        assert_eq!(&data.counter[STREAM_DATA - 4..], &[255, 255, 63, 0]);
        // The random data really is incompressible, the counter data compressible.
        assert!(data.random_zstd.len() >= data.random.len());
        assert!(
            data.counter_zstd.len() < CHUNK * 3 / 4,
            "{}",
            data.counter_zstd.len()
        );
    }
}

#[cfg(test)]
mod harness_tests {
    use super::*;

    #[test]
    fn streams_count_only_finished_data() {
        let data: Vec<u8> = (0..(STREAM_STEP as u32))
            .flat_map(u32::to_le_bytes)
            .collect();
        let mut run = StreamCompress::runner(
            &data,
            |out| flate2::write::GzEncoder::new(out, flate2::Compression::new(6)),
            |encoder| encoder.finish(),
        );
        assert_eq!(run.step().unwrap(), 0);
        run.restart();
        for _ in 0..6 {
            assert_eq!(run.step().unwrap(), 0);
        }
        // Six slices of a four-slice buffer: it wraps around.
        assert_eq!(run.finish().unwrap(), 6 * STREAM_STEP);
        assert_eq!(run.finish().unwrap(), 0);
    }

    #[test]
    fn measure_sums_threads() {
        let w = workload("t", "t", None, || {
            Ok(Box::new(|| {
                std::thread::sleep(Duration::from_millis(2));
                Ok(1_000)
            }))
        });
        let one = measure(&w, 1, Duration::from_millis(40)).unwrap();
        let two = measure(&w, 2, Duration::from_millis(40)).unwrap();
        // About 1000 bytes per 2 ms: 0.5 MB/s per thread.
        assert!(one > 0.2 && one <= 0.5, "{one}");
        assert!(two > 0.4 && two <= 1.0, "{two}");
    }
}
