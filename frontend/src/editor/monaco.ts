// Monaco from the local bundle: its loader would fetch from a CDN by default, so the editor core,
// its worker and the Python grammar are imported as modules and Vite bundles them (0.56+ entry
// points: `monaco-editor/editor`, `monaco-editor/editor/editor.worker`).
import * as monaco from "monaco-editor/editor";
import EditorWorker from "monaco-editor/editor/editor.worker?worker";
import "monaco-editor/languages/definitions/python/register";

self.MonacoEnvironment = {
  getWorker: () => new EditorWorker(),
};

export { monaco };
