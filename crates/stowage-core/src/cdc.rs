//! Content-defined chunking of a byte stream, as an [`ImageSource`] for the backup pipeline.

use std::io::{self, Read};

use stowage_chunker::Buzhash;

use crate::{ImageSource, Next};

const READ_SIZE: usize = 1 << 20;

/// A [`Read`] stream cut by the buzhash chunker: each call yields the next chunk.
pub struct CdcSource<R> {
    reader: R,
    chunker: Buzhash,
    scratch: Vec<u8>,
    pos: usize,
    end: usize,
    eof: bool,
}

impl<R: Read + Send> CdcSource<R> {
    pub fn new(reader: R, chunker: Buzhash) -> Self {
        CdcSource {
            reader,
            chunker,
            scratch: vec![0; READ_SIZE],
            pos: 0,
            end: 0,
            eof: false,
        }
    }

    /// The largest chunk this source yields.
    pub fn max_chunk(&self) -> usize {
        self.chunker.max_size()
    }
}

impl<R: Read + Send> ImageSource for CdcSource<R> {
    /// `len` is ignored: the content decides where chunks end.
    fn next_chunk(&mut self, _len: usize, buf: &mut Vec<u8>) -> io::Result<Next> {
        buf.clear();
        loop {
            if self.pos == self.end {
                if self.eof {
                    return Ok(if buf.is_empty() {
                        Next::End
                    } else {
                        Next::Data
                    });
                }
                let n = loop {
                    match self.reader.read(&mut self.scratch) {
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        other => break other?,
                    }
                };
                self.pos = 0;
                self.end = n;
                self.eof = n == 0;
                continue;
            }
            let available = &self.scratch[self.pos..self.end];
            match self.chunker.scan(available) {
                Some(k) => {
                    buf.extend_from_slice(&available[..k]);
                    self.pos += k;
                    return Ok(Next::Data);
                }
                None => {
                    buf.extend_from_slice(available);
                    self.pos = self.end;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yields_the_chunker_boundaries() {
        let data: Vec<u8> = (0..300_000u32)
            .flat_map(|i| (i * 7).to_le_bytes())
            .collect();
        let expected = Buzhash::chunk_lengths(4096, &data);
        let mut source = CdcSource::new(&data[..], Buzhash::new(4096).unwrap());
        let mut buf = Vec::new();
        let mut got = Vec::new();
        let mut joined = Vec::new();
        while source.next_chunk(0, &mut buf).unwrap() == Next::Data {
            got.push(buf.len());
            joined.extend_from_slice(&buf);
        }
        assert_eq!(got, expected);
        assert_eq!(joined, data);
        assert!(got.len() > 10);
    }
}
