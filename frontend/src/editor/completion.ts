// Python completion: keywords, builtins and a few snippets.
export const KEYWORDS = [
  "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class",
  "continue", "def", "del", "elif", "else", "except", "finally", "for", "from", "global", "if",
  "import", "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try",
  "while", "with", "yield",
];

export const BUILTINS = [
  "abs", "all", "any", "bool", "dict", "enumerate", "filter", "float", "input", "int",
  "isinstance", "len", "list", "map", "max", "min", "open", "print", "range", "reversed",
  "round", "set", "sorted", "str", "sum", "tuple", "type", "zip",
];

export interface Snippet {
  label: string;
  insertText: string;
  documentation: string;
}

export const SNIPPETS: Snippet[] = [
  { label: "def", insertText: "def ${1:name}(${2:args}):\n\t${3:pass}", documentation: "function" },
  { label: "for", insertText: "for ${1:item} in ${2:items}:\n\t${3:pass}", documentation: "for loop" },
  { label: "if", insertText: "if ${1:condition}:\n\t${2:pass}", documentation: "if statement" },
  { label: "while", insertText: "while ${1:condition}:\n\t${2:pass}", documentation: "while loop" },
  {
    label: "class",
    insertText: "class ${1:Name}:\n\tdef __init__(self${2:, args}):\n\t\t${3:pass}",
    documentation: "class",
  },
];
