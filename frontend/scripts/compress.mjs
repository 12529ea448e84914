// Precompresses the built assets (dist/assets/*) next to themselves as .br and .gz, so the
// server sends them compressed without compressing per request. index.html stays as it is: it
// is tiny and must never be cached.
import { readdirSync, readFileSync, writeFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { brotliCompressSync, gzipSync, constants } from "node:zlib";

const dir = new URL("../dist/assets/", import.meta.url).pathname;
const worth = /\.(js|css|wasm|svg|json|ttf|map)$/;
let before = 0;
let brotli = 0;
for (const name of readdirSync(dir)) {
  if (!worth.test(name)) continue;
  const path = join(dir, name);
  const data = readFileSync(path);
  const br = brotliCompressSync(data, {
    params: {
      [constants.BROTLI_PARAM_QUALITY]: data.length > 4_000_000 ? 9 : 11,
      [constants.BROTLI_PARAM_SIZE_HINT]: data.length,
    },
  });
  writeFileSync(path + ".br", br);
  writeFileSync(path + ".gz", gzipSync(data, { level: 9 }));
  before += statSync(path).size;
  brotli += br.length;
}
console.log(`precompressed assets: ${(before / 1e6).toFixed(1)} MB -> ${(brotli / 1e6).toFixed(1)} MB (brotli)`);
