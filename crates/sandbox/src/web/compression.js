// ---- Compression Streams (WHATWG Compression Streams Standard) ----
// CompressionStream and DecompressionStream for "gzip", "deflate" (zlib)
// and "deflate-raw": transform streams whose chunks go one at a time
// through a host (de)compressor (compression.rs), so memory is bounded by
// the chunk, not the stream. The host enforces its limits (open streams,
// decompressed bytes) and reports corrupt, truncated or trailing data as a
// TypeError, which errors both sides of the stream here.

const COMPRESSION_FORMATS = ["gzip", "deflate", "deflate-raw"];
// A stream dropped without being finished or canceled gives its host
// (de)compressor back when the transformer is collected (nothing can feed
// that handle any more).
const compressionRegistry = typeof FinalizationRegistry === "function"
  ? new FinalizationRegistry((id) => host.compressionClose(id))
  : null;

const compressionTransform = (name, format, decompress) => {
  format = String(format);
  if (!COMPRESSION_FORMATS.includes(format))
    throw new TypeError(`${name}: unsupported format ${JSON.stringify(format)} (expected "gzip", "deflate" or "deflate-raw")`);
  const id = host.compressionOpen(format, decompress);
  let open = true;
  // The registration's token is its own object: with the transformer as
  // its own token, this engine never collects the transformer.
  const token = {};
  const release = () => {
    if (!open) return;
    open = false;
    compressionRegistry?.unregister(token);
    host.compressionClose(id);
  };
  const transformer = {
    transform(chunk, controller) {
      try {
        if (!(chunk instanceof ArrayBuffer || ArrayBuffer.isView(chunk)))
          throw new TypeError(`${name}: chunks must be an ArrayBuffer, a typed array or a DataView`);
        const out = host.compressionWrite(id, toBytes(chunk));
        if (out.byteLength > 0) controller.enqueue(out);
      } catch (e) {
        release();
        controller.error(e);
        throw e;
      }
    },
    flush(controller) {
      let out;
      try {
        open = false;
        compressionRegistry?.unregister(token);
        out = host.compressionFinish(id);
      } catch (e) {
        controller.error(e);
        throw e;
      }
      if (out.byteLength > 0) controller.enqueue(out);
    },
    cancel() { release(); },
  };
  compressionRegistry?.register(transformer, id, token);
  return new TransformStream(transformer);
};

class CompressionStream {
  #transform;
  constructor(format) { this.#transform = compressionTransform("CompressionStream", format, false); }
  get readable() { return this.#transform.readable; }
  get writable() { return this.#transform.writable; }
  get [Symbol.toStringTag]() { return "CompressionStream"; }
}
class DecompressionStream {
  #transform;
  constructor(format) { this.#transform = compressionTransform("DecompressionStream", format, true); }
  get readable() { return this.#transform.readable; }
  get writable() { return this.#transform.writable; }
  get [Symbol.toStringTag]() { return "DecompressionStream"; }
}

define("CompressionStream", CompressionStream);
define("DecompressionStream", DecompressionStream);
