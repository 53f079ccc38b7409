#!/usr/bin/env bash
# Install pinned deps from package-lock.json and bundle every agents/*.ts into
# ONE self-contained ES module: ${OUT_DIR:-out}/NAME.js (no import statements).
set -euo pipefail
cd "$(dirname "$0")"

npm ci --no-audit --no-fund

OUT_DIR="${OUT_DIR:-out}"
mkdir -p "$OUT_DIR"
META_DIR="$(mktemp -d)"
trap 'rm -rf "$META_DIR"' EXIT

shopt -s nullglob
agents=(agents/*.ts)
if [ ${#agents[@]} -eq 0 ]; then
  echo "no agents/*.ts found" >&2
  exit 1
fi

for src in "${agents[@]}"; do
  name="$(basename "$src" .ts)"
  out="$OUT_DIR/$name.js"
  # --platform=neutral sets no main fields and no platform conditions.
  # hono, zod and @hono/zod-validator all resolve through package.json
  # "exports" (condition "import"), so --main-fields is not strictly needed;
  # it is passed anyway so a dependency that only has "module"/"main" still
  # resolves instead of failing the build.
  ./node_modules/.bin/esbuild "$src" \
    --bundle \
    --format=esm \
    --platform=neutral \
    --target=es2023 \
    --main-fields=module,main \
    --log-level=warning \
    --outfile="$out" \
    --metafile="$META_DIR/$name.json"
  # Guard: the bundle must be one self-contained module. esbuild's metafile
  # lists every import left in the output (static or dynamic, incl. external
  # and node: built-ins); it must be empty. Also reject top-level import lines.
  node -e '
    const [meta, out] = process.argv.slice(1);
    const outputs = Object.entries(JSON.parse(require("fs").readFileSync(meta, "utf8")).outputs);
    if (outputs.length !== 1) { console.error("expected exactly one output for " + out, outputs.map(([k]) => k)); process.exit(1); }
    const imports = outputs[0][1].imports;
    if (imports.length) { console.error(out + " has imports:", imports); process.exit(1); }
  ' "$META_DIR/$name.json" "$out"
  if grep -nE '^import[ {*"]' "$out"; then
    echo "error: $out contains an import statement" >&2
    exit 1
  fi
  echo "built $out ($(wc -c <"$out") bytes)"
done
