//! Sequential pxar decoder over `std::io::Read`: the sync front end of the [`DecodeState`]
//! machine, plus checks for a split archive's payload stream.

use std::io::{self, Read};

use crate::decode_state::{DecodeState, Want};
use crate::error::{DecodeError, DecodeErrorKind as Kind};
pub use crate::event::{DirectoryEnd, Entry, EntryKind, Event, Payload};
use crate::format::{self, Header, PayloadRef};

/// A sequential decoder reading a pxar (or `.mpxar`) stream from `R`.
pub struct Decoder<R> {
    input: R,
    state: DecodeState,
    buf: Vec<u8>,
    done: bool,
}

impl<R: Read> Decoder<R> {
    pub fn new(input: R) -> Self {
        Decoder {
            input,
            state: DecodeState::new(),
            buf: Vec::new(),
            done: false,
        }
    }

    /// A decoder of the one entry whose FILENAME header is at stream offset `offset`, with
    /// `input` reading the stream from there (see [`DecodeState::at_entry`]).
    pub fn at_entry(input: R, offset: u64, split: bool) -> Self {
        Decoder {
            input,
            state: DecodeState::at_entry(offset, split),
            buf: Vec::new(),
            done: false,
        }
    }

    /// Stream offset of the next unread byte.
    pub fn position(&self) -> u64 {
        self.state.position()
    }

    /// Whether this is a split (v2) metadata archive (known after the first event).
    pub fn is_split(&self) -> bool {
        self.state.is_split()
    }

    /// The PRELUDE content, if any (known after the first event).
    pub fn prelude(&self) -> Option<&[u8]> {
        self.state.prelude()
    }

    /// Payload bytes of the current inline file not read yet.
    pub fn payload_remaining(&self) -> u64 {
        match self.state.want() {
            Want::Payload(n) => n,
            _ => 0,
        }
    }

    /// The next event, or `None` at the verified end of the archive. After an error the
    /// decoder is finished.
    pub fn next_event(&mut self) -> Result<Option<Event>, DecodeError> {
        if self.done {
            return Ok(None);
        }
        let result = self.step();
        if !matches!(result, Ok(Some(_))) {
            self.done = true;
            self.state.fail();
        }
        result
    }

    fn step(&mut self) -> Result<Option<Event>, DecodeError> {
        loop {
            match self.state.want() {
                Want::Header => {
                    let mut header = [0u8; 16];
                    self.read_exact(&mut header)?;
                    self.state.feed_header(&header)?;
                }
                Want::Content(len) => {
                    let mut buf = std::mem::take(&mut self.buf);
                    buf.clear();
                    buf.resize(len, 0);
                    let read = self.read_exact(&mut buf);
                    let fed = read.and_then(|()| self.state.feed_content(&buf));
                    self.buf = buf;
                    fed?;
                }
                Want::Payload(n) => self.skip_payload(n)?,
                Want::End => return self.expect_end().map(|()| None),
            }
            if let Some(event) = self.state.take_event() {
                return Ok(Some(event));
            }
        }
    }

    /// Reads payload bytes of the current inline file; 0 when there are none left.
    pub fn read_payload(&mut self, buf: &mut [u8]) -> Result<usize, DecodeError> {
        let remaining = self.payload_remaining();
        let want = buf
            .len()
            .min(usize::try_from(remaining).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let got = loop {
            match self.input.read(&mut buf[..want]) {
                Ok(0) => break Err(Kind::Truncated),
                Ok(n) => break Ok(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => break Err(Kind::Io(e)),
            }
        };
        let got = got.map_err(|kind| self.failed(kind))?;
        self.state.payload_consumed(got as u64);
        Ok(got)
    }

    /// A reader over the current inline file's remaining payload.
    pub fn payload_reader(&mut self) -> PayloadReader<'_, R> {
        PayloadReader { decoder: self }
    }

    /// Gives back the input.
    pub fn into_inner(self) -> R {
        self.input
    }

    fn failed(&mut self, kind: Kind) -> DecodeError {
        self.done = true;
        self.state.fail();
        DecodeError::new(self.state.position(), kind)
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), DecodeError> {
        self.input.read_exact(buf).map_err(|e| {
            let kind = if e.kind() == io::ErrorKind::UnexpectedEof {
                Kind::Truncated
            } else {
                Kind::Io(e)
            };
            DecodeError::new(self.state.position(), kind)
        })
    }

    fn skip_payload(&mut self, n: u64) -> Result<(), DecodeError> {
        let skipped = io::copy(&mut (&mut self.input).take(n), &mut io::sink())
            .map_err(|e| DecodeError::new(self.state.position(), Kind::Io(e)))?;
        self.state.payload_consumed(skipped);
        if skipped < n {
            return Err(DecodeError::new(self.state.position(), Kind::Truncated));
        }
        Ok(())
    }

    fn expect_end(&mut self) -> Result<(), DecodeError> {
        let mut probe = [0u8; 1];
        loop {
            return match self.input.read(&mut probe) {
                Ok(0) => Ok(()),
                Ok(_) => Err(DecodeError::new(self.state.position(), Kind::TrailingData)),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => Err(DecodeError::new(self.state.position(), Kind::Io(e))),
            };
        }
    }
}

impl<R: Read> Iterator for Decoder<R> {
    type Item = Result<Event, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_event().transpose()
    }
}

/// `Read` over the current inline file's payload (see [`Decoder::payload_reader`]).
pub struct PayloadReader<'a, R> {
    decoder: &'a mut Decoder<R>,
}

impl<R: Read> Read for PayloadReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.decoder
            .read_payload(buf)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }
}

/// Checks the 16 bytes at `r.offset` of a payload stream: a PAYLOAD header of `r.size`.
pub fn check_payload_header(header: &[u8; 16], r: PayloadRef) -> Result<(), DecodeError> {
    let h = Header::from_bytes(header);
    if h.htype == format::PAYLOAD && h.content_size() == Some(r.size) {
        Ok(())
    } else {
        Err(DecodeError::new(
            r.offset,
            Kind::PayloadHeader { size: r.size },
        ))
    }
}

/// The contents `r` refers to in a whole payload stream held in memory, after checking the
/// PAYLOAD header in front of them.
pub fn payload_slice(stream: &[u8], r: PayloadRef) -> Result<&[u8], DecodeError> {
    let truncated = || DecodeError::new(r.offset, Kind::Truncated);
    let start = usize::try_from(r.offset).map_err(|_| truncated())?;
    let header: &[u8; 16] = stream
        .get(start..start.saturating_add(16))
        .and_then(|h| h.try_into().ok())
        .ok_or_else(truncated)?;
    check_payload_header(header, r)?;
    let size = usize::try_from(r.size).map_err(|_| truncated())?;
    let begin = start + 16;
    stream
        .get(begin..begin.saturating_add(size))
        .filter(|s| s.len() == size)
        .ok_or_else(truncated)
}

/// Checks the frame of a whole payload stream: PAYLOAD_START_MARKER first and
/// PAYLOAD_TAIL_MARKER last (both with full size 16).
pub fn check_payload_stream(stream: &[u8]) -> Result<(), DecodeError> {
    let marker = |at: usize| -> Option<Header> {
        let b: &[u8; 16] = stream.get(at..at.checked_add(16)?)?.try_into().ok()?;
        Some(Header::from_bytes(b))
    };
    let start = Header::with_content(format::PAYLOAD_START_MARKER, 0);
    if marker(0) != Some(start) {
        return Err(DecodeError::new(0, Kind::PayloadStartMarker));
    }
    let tail_at = stream.len().saturating_sub(16);
    let tail = Header::with_content(format::PAYLOAD_TAIL_MARKER, 0);
    if stream.len() < 32 || marker(tail_at) != Some(tail) {
        return Err(DecodeError::new(tail_at as u64, Kind::PayloadTailMarker));
    }
    Ok(())
}
