// Messages between the page and the diagnostics worker.
import type { Marker } from "./markers";

export interface CheckRequest {
  version: number;
  text: string;
}

export interface CheckReply {
  version: number;
  result: { markers: Marker[]; ms: number } | { error: string };
}
