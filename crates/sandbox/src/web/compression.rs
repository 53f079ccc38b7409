//! The host side of `CompressionStream` and `DecompressionStream` (the WHATWG
//! Compression Streams Standard) for the formats `gzip`, `deflate` (zlib)
//! and `deflate-raw`, on `flate2`.
//!
//! Each instance keeps its own table of live (de)compressors keyed by a u32
//! handle. `compression.js` opens one per stream, feeds it chunk by chunk
//! and enqueues whatever output each chunk produced, so memory is bounded by
//! the chunk, never the whole stream. Decompression is incremental and
//! counted as it goes: a stream that would decompress to more than
//! [`DECOMPRESSED_BYTES_MAX`] fails with a `TypeError` before more than about
//! that much is ever allocated (a zip bomb costs the agent one clear error,
//! not the instance). Corrupt input, input that ends before the end of the
//! compressed stream and data after its end are `TypeError`s, as the
//! standard says.
//!
//! Host functions (on the `host` object the prelude captures):
//! - `compressionOpen(format, decompress) -> id`
//! - `compressionWrite(id, chunk) -> Uint8Array` (the output so far)
//! - `compressionFinish(id) -> Uint8Array` (the rest of the output; closes)
//! - `compressionClose(id)` (drops the stream on cancel or error)
//!
//! A stream that fails is dropped from the table at once, so a later
//! `compressionClose` is harmless.

use super::{Settled, with_bytes};
use flate2::Compression;
use flate2::write::{DeflateDecoder, DeflateEncoder, GzDecoder, GzEncoder, ZlibDecoder, ZlibEncoder};
use rquickjs::prelude::Func;
use rquickjs::{Ctx, Exception, Object, TypedArray};
use std::collections::HashMap;
use std::io::{self, Write};
use std::sync::{Arc, Mutex};

/// Most (de)compression streams one instance may have open at once (each
/// holds a few hundred KiB of codec state outside the JavaScript heap).
pub(crate) const STREAMS_MAX: usize = 64;

/// Most bytes one `DecompressionStream` may produce in all: past it the
/// stream fails with a `TypeError` (decompression stops there, so a zip bomb
/// never allocates much more than this).
pub(crate) const DECOMPRESSED_BYTES_MAX: u64 = 32 * 1024 * 1024;

/// Where a codec writes its output: drained by every host call, and, for
/// decompression, refusing to grow the stream's total past the limit.
struct Output {
    bytes: Vec<u8>,
    total: u64,
    limit: Option<u64>,
    exceeded: bool,
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let total = self.total + buf.len() as u64;
        if self.limit.is_some_and(|limit| total > limit) {
            self.exceeded = true;
            return Err(io::Error::other("the decompressed data is too large"));
        }
        let needed = self.bytes.len() + buf.len();
        if needed > self.bytes.capacity() {
            // Grow as a Vec would, but never past what the limit lets this
            // stream still produce (`total + buf.len() <= limit` here).
            let most = self.limit.map_or(usize::MAX, |limit| {
                self.bytes.len().saturating_add(usize::try_from(limit - self.total).unwrap_or(usize::MAX))
            });
            let target = self.bytes.capacity().saturating_mul(2).max(needed).min(most);
            self.bytes.reserve_exact(target - self.bytes.len());
        }
        self.bytes.extend_from_slice(buf);
        self.total = total;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A `flate2` streaming writer (encoder or decoder) over an [`Output`].
trait Codec: Write + Send {
    fn output(&mut self) -> &mut Output;
    /// Writes the end of the stream (compression) or checks that the input
    /// reached it (decompression).
    fn finish(&mut self) -> io::Result<()>;
}

macro_rules! codec {
    ($($type:ident),*) => {$(
        impl Codec for $type<Output> {
            fn output(&mut self) -> &mut Output {
                self.get_mut()
            }
            fn finish(&mut self) -> io::Result<()> {
                self.try_finish()
            }
        }
    )*};
}
codec!(GzEncoder, ZlibEncoder, DeflateEncoder, GzDecoder, ZlibDecoder, DeflateDecoder);

/// One open stream.
struct Stream {
    codec: Box<dyn Codec>,
    decompress: bool,
}

impl Stream {
    fn name(&self) -> &'static str {
        if self.decompress { "DecompressionStream" } else { "CompressionStream" }
    }

    /// The error for a failed write or finish, by what went wrong.
    fn failure(&mut self, error: &io::Error) -> String {
        let name = self.name();
        if self.codec.output().exceeded {
            format!("{name}: the decompressed data is larger than {DECOMPRESSED_BYTES_MAX} bytes")
        } else if error.kind() == io::ErrorKind::UnexpectedEof {
            format!("{name}: the input ended before the end of the compressed data")
        } else if self.decompress && error.to_string().contains("checksum") {
            // gzip checks its trailer only at the end: it is wrong or cut short.
            format!("{name}: the compressed data is corrupt or truncated (its checksum does not match)")
        } else if self.decompress {
            format!("{name}: the compressed data is corrupt ({error})")
        } else {
            format!("{name}: {error}")
        }
    }

    /// Feeds `chunk` in; what came out so far, or the error message.
    fn write(&mut self, mut chunk: &[u8]) -> Result<Vec<u8>, String> {
        while !chunk.is_empty() {
            match self.codec.write(chunk) {
                // A decoder takes nothing more once its stream has ended.
                Ok(0) => return Err(format!("{}: there is data after the end of the compressed data", self.name())),
                Ok(n) => chunk = &chunk[n..],
                Err(error) => return Err(self.failure(&error)),
            }
        }
        Ok(std::mem::take(&mut self.codec.output().bytes))
    }

    /// Ends the stream; the rest of the output, or the error message.
    fn finish(&mut self) -> Result<Vec<u8>, String> {
        match self.codec.finish() {
            Ok(()) => Ok(std::mem::take(&mut self.codec.output().bytes)),
            Err(error) => Err(self.failure(&error)),
        }
    }
}

/// The formats the standard defines.
const FORMATS: [&str; 3] = ["gzip", "deflate", "deflate-raw"];

/// A codec for `format`, one of [`FORMATS`] (the caller checks: anything
/// but the two deflate formats is gzip here).
fn open(format: &str, decompress: bool) -> Box<dyn Codec> {
    let output =
        Output { bytes: Vec::new(), total: 0, limit: decompress.then_some(DECOMPRESSED_BYTES_MAX), exceeded: false };
    let level = Compression::default();
    match (format, decompress) {
        ("deflate", false) => Box::new(ZlibEncoder::new(output, level)),
        ("deflate-raw", false) => Box::new(DeflateEncoder::new(output, level)),
        ("deflate", true) => Box::new(ZlibDecoder::new(output)),
        ("deflate-raw", true) => Box::new(DeflateDecoder::new(output)),
        (_gzip, false) => Box::new(GzEncoder::new(output, level)),
        (_gzip, true) => Box::new(GzDecoder::new(output)),
    }
}

/// The open streams of one instance.
#[derive(Default)]
struct Table {
    streams: HashMap<u32, Stream>,
    next: u32,
}

type Shared = Arc<Mutex<Table>>;

fn lock(table: &Shared) -> std::sync::MutexGuard<'_, Table> {
    table.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs `step` on stream `id`; drops the stream if it failed (or if `last`).
fn run(table: &Shared, id: u32, last: bool, step: impl FnOnce(&mut Stream) -> Result<Vec<u8>, String>) -> Settled {
    let mut table = lock(table);
    let Some(stream) = table.streams.get_mut(&id) else {
        return Settled::Failed("the (de)compression stream is closed".into());
    };
    let result = step(stream);
    if last || result.is_err() {
        table.streams.remove(&id);
    }
    match result {
        Ok(bytes) => Settled::Bytes(bytes),
        Err(message) => Settled::Failed(message),
    }
}

/// Puts the compression host functions on `host`, with a table of their own.
pub(crate) fn install(host: &Object<'_>) -> rquickjs::Result<()> {
    let table = Shared::default();
    let opener = table.clone();
    host.set(
        "compressionOpen",
        Func::from(move |ctx: Ctx<'_>, format: String, decompress: bool| {
            let name = if decompress { "DecompressionStream" } else { "CompressionStream" };
            if !FORMATS.contains(&format.as_str()) {
                return Err(Exception::throw_type(
                    &ctx,
                    &format!("{name}: unsupported format {format:?} (expected \"gzip\", \"deflate\" or \"deflate-raw\")"),
                ));
            }
            let mut table = lock(&opener);
            if table.streams.len() >= STREAMS_MAX {
                return Err(Exception::throw_range(
                    &ctx,
                    &format!("{name}: at most {STREAMS_MAX} compression streams may be open at once; finish or cancel one first"),
                ));
            }
            let codec = open(&format, decompress);
            let mut id = table.next;
            while table.streams.contains_key(&id) {
                id = id.wrapping_add(1);
            }
            table.next = id.wrapping_add(1);
            table.streams.insert(id, Stream { codec, decompress });
            Ok(id)
        }),
    )?;
    let writer = table.clone();
    host.set(
        "compressionWrite",
        Func::from(move |id: u32, chunk: TypedArray<'_, u8>| {
            run(&writer, id, false, |stream| with_bytes(&chunk, |bytes| stream.write(bytes)))
        }),
    )?;
    let finisher = table.clone();
    host.set("compressionFinish", Func::from(move |id: u32| run(&finisher, id, true, Stream::finish)))?;
    host.set(
        "compressionClose",
        Func::from(move |id: u32| {
            lock(&table).streams.remove(&id);
        }),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `len` zeros compressed as gzip, built in pieces.
    fn gzip_zeros(len: usize) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..len / zeros.len() {
            encoder.write_all(&zeros).unwrap();
        }
        encoder.finish().unwrap()
    }

    /// A bomb stops at the limit, and its output buffer never grew past it.
    #[test]
    fn a_bomb_stops_at_the_limit_without_allocating_past_it() {
        let bomb = gzip_zeros(256 << 20);
        let mut stream = Stream { codec: open("gzip", true), decompress: true };
        let error = stream.write(&bomb).unwrap_err();
        assert_eq!(error, "DecompressionStream: the decompressed data is larger than 33554432 bytes");
        let output = stream.codec.output();
        assert!(output.total <= DECOMPRESSED_BYTES_MAX, "{}", output.total);
        assert!(output.total > DECOMPRESSED_BYTES_MAX - 64 * 1024, "{}", output.total);
        assert!(output.bytes.capacity() <= DECOMPRESSED_BYTES_MAX as usize, "{}", output.bytes.capacity());
    }

    /// Exactly the limit is allowed.
    #[test]
    fn exactly_the_limit_decompresses() {
        let data = gzip_zeros(DECOMPRESSED_BYTES_MAX as usize);
        let mut stream = Stream { codec: open("gzip", true), decompress: true };
        let mut total = 0;
        for chunk in data.chunks(1000) {
            total += stream.write(chunk).unwrap().len();
        }
        total += stream.finish().unwrap().len();
        assert_eq!(total as u64, DECOMPRESSED_BYTES_MAX);
    }
}
