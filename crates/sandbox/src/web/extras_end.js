
Object.assign(internals, {
  URL, URLSearchParams, ReadableStream, Blob, FormData, AbortController,
  streamDisturbed, streamBytes, bytesStream, chunkBytes, readAll, blobBytes, encodeMultipart, parseMultipart,
  subtle,
  loaded: true,
});
