// Monaco, bundled locally (no CDN), with Ruff diagnostics from a worker and Python completion.
import { useEffect, useRef } from "react";
import { monaco } from "./monaco";
import { BUILTINS, KEYWORDS, SNIPPETS } from "./completion";
import { DiagnosticsScheduler } from "../diagnostics/scheduler";
import type { CheckReply } from "../diagnostics/protocol";
import type { Marker } from "../diagnostics/markers";
import RuffWorker from "../diagnostics/ruff.worker?worker";

export interface DiagnosticsEvent {
  markers: Marker[];
  version: number;
}

interface Props {
  value: string;
  onChange: (code: string) => void;
  onSubmit: () => void;
  onDiagnostics?: (event: DiagnosticsEvent) => void;
}

let completionRegistered = false;

function registerCompletion(): void {
  if (completionRegistered) return;
  completionRegistered = true;
  monaco.languages.registerCompletionItemProvider("python", {
    provideCompletionItems(model, position) {
      const word = model.getWordUntilPosition(position);
      const range = {
        startLineNumber: position.lineNumber,
        endLineNumber: position.lineNumber,
        startColumn: word.startColumn,
        endColumn: word.endColumn,
      };
      const Kind = monaco.languages.CompletionItemKind;
      return {
        suggestions: [
          ...KEYWORDS.map((k) => ({ label: k, kind: Kind.Keyword, insertText: k, range })),
          ...BUILTINS.map((b) => ({ label: b, kind: Kind.Function, insertText: b, range })),
          ...SNIPPETS.map((s) => ({
            label: s.label,
            kind: Kind.Snippet,
            insertText: s.insertText,
            insertTextRules: monaco.languages.CompletionItemInsertTextRule.InsertAsSnippet,
            documentation: s.documentation,
            range,
          })),
        ],
      };
    },
  });
}

export function CodeEditor({ value, onChange, onSubmit, onDiagnostics }: Props) {
  const host = useRef<HTMLDivElement>(null);
  const editorRef = useRef<monaco.editor.IStandaloneCodeEditor | null>(null);
  const submitRef = useRef(onSubmit);
  const changeRef = useRef(onChange);
  const diagnosticsRef = useRef(onDiagnostics);
  submitRef.current = onSubmit;
  changeRef.current = onChange;
  diagnosticsRef.current = onDiagnostics;

  useEffect(() => {
    if (!host.current) return;
    registerCompletion();
    const editor = monaco.editor.create(host.current, {
      value,
      language: "python",
      automaticLayout: true,
      minimap: { enabled: false },
      fontSize: 14,
      tabSize: 4,
      insertSpaces: true,
      scrollBeyondLastLine: false,
      ariaLabel: "Python code editor",
    });
    editorRef.current = editor;
    const model = editor.getModel()!;
    const worker = new RuffWorker();
    const scheduler = new DiagnosticsScheduler<CheckReply["result"]>(
      (version, text) => worker.postMessage({ version, text }),
      (result, version) => {
        if ("error" in result) return;
        monaco.editor.setModelMarkers(model, "ruff", result.markers);
        diagnosticsRef.current?.({ markers: result.markers, version });
      },
      150,
    );
    worker.onmessage = (event: MessageEvent<CheckReply>) => scheduler.receive(event.data);
    scheduler.flush(model.getValue());
    const changes = model.onDidChangeContent(() => {
      const text = model.getValue();
      changeRef.current(text);
      scheduler.schedule(text);
    });
    editor.addAction({
      id: "learnflow.submit",
      label: "Submit solution",
      keybindings: [monaco.KeyMod.CtrlCmd | monaco.KeyCode.Enter],
      run: () => submitRef.current(),
    });
    return () => {
      changes.dispose();
      scheduler.dispose();
      worker.terminate();
      editor.dispose();
    };
    // The editor is created once per exercise (the parent keys this component).
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  return <div className="editor" ref={host} data-testid="editor" />;
}
