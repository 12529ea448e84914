// The API client, typed from the API's OpenAPI document (src/api/schema.ts is generated).
import createClient from "openapi-fetch";
import type { components, paths } from "./schema";

export type Exercise = components["schemas"]["ExerciseDetail"];
export type ExerciseSummary = components["schemas"]["ExerciseSummary"];
export type AttemptResponse = components["schemas"]["AttemptResponse"];
export type Progress = components["schemas"]["ProgressResponse"];
export type AttemptSummary = components["schemas"]["AttemptSummary"];

export const api = createClient<paths>({ baseUrl: "" });

/** A failed call, with what the student should read. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly retryAfterS: number | null = null,
  ) {
    super(message);
  }
}

export function explain(response: Response, body: unknown): ApiError {
  const detail =
    body && typeof body === "object" && "detail" in body ? String((body as { detail: unknown }).detail) : "";
  const retry = Number(response.headers.get("Retry-After"));
  const retryAfter = Number.isFinite(retry) && retry > 0 ? retry : null;
  if (response.status === 429) {
    return new ApiError(429, `Too many requests: wait ${retryAfter ?? 60} s and try again.`, retryAfter);
  }
  if (response.status === 401) return new ApiError(401, detail || "Please log in again.");
  if (response.status >= 500) {
    return new ApiError(response.status, `The server could not answer (${response.status}). ${detail}`.trim());
  }
  return new ApiError(response.status, detail || `Request failed (${response.status}).`);
}

export function authHeaders(token: string): Record<string, string> {
  return { Authorization: `Bearer ${token}` };
}
