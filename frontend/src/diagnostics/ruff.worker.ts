// Ruff compiled to WebAssembly, in a worker of its own: parsing and linting never block typing.
import init, { PositionEncoding, Workspace } from "@astral-sh/ruff-wasm-web";
import wasmUrl from "@astral-sh/ruff-wasm-web/ruff_wasm_bg.wasm?url";
import { toMarkers, type RuffDiagnostic } from "./markers";
import type { CheckReply, CheckRequest } from "./protocol";

const ready: Promise<Workspace> = init({ module_or_path: wasmUrl }).then(
  () =>
    new Workspace({
      "line-length": 100,
      "indent-width": 4,
      lint: { select: ["E4", "E7", "E9", "F", "B"] },
    }, PositionEncoding.Utf16),
);

self.onmessage = async (event: MessageEvent<CheckRequest>) => {
  const { version, text } = event.data;
  let reply: CheckReply;
  try {
    const workspace = await ready;
    const began = performance.now();
    const diagnostics = workspace.check(text) as RuffDiagnostic[];
    const lines = text.split("\n").length;
    reply = { version, result: { markers: toMarkers(diagnostics, lines), ms: performance.now() - began } };
  } catch (error) {
    reply = { version, result: { error: String(error) } };
  }
  (self as unknown as Worker).postMessage(reply);
};
