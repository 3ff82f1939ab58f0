// The API client: the key from sessionStorage as a Bearer header, errors as ApiError with the server's message.

const KEY_NAME = "blockzoo.apiKey";

export const session = {
  key: () => sessionStorage.getItem(KEY_NAME),
  signIn: (key) => sessionStorage.setItem(KEY_NAME, key),
  signOut: () => sessionStorage.removeItem(KEY_NAME),
};

export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

const NETWORK_MESSAGE = "Cannot reach the BlockZoo server. Is it still running? Reload the page when it is back.";

function headers(extra = {}) {
  const key = session.key();
  return key ? { Authorization: `Bearer ${key}`, ...extra } : extra;
}

function errorFrom(status, body, fallback) {
  const error = body && body.error;
  if (error && error.message) return new ApiError(status, error.code, error.message, error.details);
  return new ApiError(status, "http_" + status, fallback || `The server answered ${status}.`);
}

function signalUnauthorized(error) {
  if (error.status === 401) window.dispatchEvent(new CustomEvent("blockzoo:unauthorized", { detail: error }));
}

async function parse(response) {
  const type = response.headers.get("content-type") || "";
  return type.includes("application/json") ? response.json() : null;
}

/** JSON request; resolves to {status, body} so callers can tell 200 from 202. */
export async function request(method, path, body, { quiet = false } = {}) {
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, "network", NETWORK_MESSAGE);
  }
  const data = await parse(response).catch(() => null);
  if (!response.ok) {
    const error = errorFrom(response.status, data, response.statusText);
    if (!quiet) signalUnauthorized(error);
    throw error;
  }
  return { status: response.status, body: data };
}

export const get = async (path, options) => (await request("GET", path, undefined, options)).body;
export const post = async (path, body) => (await request("POST", path, body ?? {})).body;
export const del = async (path) => (await request("DELETE", path)).body;

/** POST a file as the raw request body (e.g. a latency table's JSON), with its content type. */
export async function postFile(path, file, type = "application/octet-stream") {
  let response;
  try {
    response = await fetch(path, { method: "POST", headers: headers({ "Content-Type": type }), body: file });
  } catch {
    throw new ApiError(0, "network", NETWORK_MESSAGE);
  }
  const data = await parse(response).catch(() => null);
  if (!response.ok) {
    const error = errorFrom(response.status, data, response.statusText);
    signalUnauthorized(error);
    throw error;
  }
  return data;
}

/**
 * Reads a server-sent event stream with fetch, so that the key goes in the Authorization header
 * (EventSource cannot send one, and the key never goes into a URL). Calls onEvent(name, data) for
 * every event; comments (heartbeats) are skipped. Resolves when the server closes the stream (or
 * `signal` aborts it); rejects with an ApiError when it cannot be opened or breaks off.
 */
export async function streamEvents(path, onEvent, signal) {
  let response;
  try {
    response = await fetch(path, { headers: headers({ Accept: "text/event-stream" }), cache: "no-store", signal });
  } catch {
    if (signal?.aborted) return;
    throw new ApiError(0, "network", NETWORK_MESSAGE);
  }
  if (!response.ok) {
    const error = errorFrom(response.status, await parse(response).catch(() => null), response.statusText);
    signalUnauthorized(error);
    throw error;
  }
  if (!response.body || !(response.headers.get("content-type") || "").startsWith("text/event-stream")) {
    throw new ApiError(response.status, "not_a_stream", "The server did not answer with an event stream.");
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "", name = "", data = [];
  const line = (text) => {
    if (text === "") { // a blank line ends an event
      if (data.length) onEvent(name || "message", data.join("\n"));
      name = ""; data = [];
      return;
    }
    if (text.startsWith(":")) return; // a comment: the server's heartbeat
    const colon = text.indexOf(":");
    const field = colon < 0 ? text : text.slice(0, colon);
    const value = colon < 0 ? "" : text.slice(colon + 1).replace(/^ /, "");
    if (field === "event") name = value;
    else if (field === "data") data.push(value);
  };
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n")) >= 0) {
        line(buffer.slice(0, end).replace(/\r$/, ""));
        buffer = buffer.slice(end + 1);
      }
    }
  } catch {
    if (signal?.aborted) return;
    throw new ApiError(0, "network", "The event stream broke off.");
  }
}

/** Multipart upload through XMLHttpRequest, whose upload events give a progress bar. */
export function upload(path, form, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    for (const [name, value] of Object.entries(headers())) xhr.setRequestHeader(name, value);
    xhr.responseType = "json";
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total, event.loaded, event.total);
    });
    xhr.addEventListener("load", () => {
      if (xhr.status >= 200 && xhr.status < 300) return resolve(xhr.response);
      const error = errorFrom(xhr.status, xhr.response, xhr.statusText);
      signalUnauthorized(error);
      reject(error);
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, "network", NETWORK_MESSAGE)));
    xhr.send(form);
  });
}

async function fetchBlob(path) {
  let response;
  try {
    response = await fetch(path, { headers: headers() });
  } catch {
    throw new ApiError(0, "network", NETWORK_MESSAGE);
  }
  if (!response.ok) {
    const error = errorFrom(response.status, await parse(response).catch(() => null), response.statusText);
    signalUnauthorized(error);
    throw error;
  }
  return response;
}

/** An object URL for an authenticated image (the caller revokes it when the view goes). */
export async function objectUrl(path) {
  return URL.createObjectURL(await (await fetchBlob(path)).blob());
}

/**
 * Downloads an authenticated file: fetch with the Bearer header, then a temporary blob link,
 * so that the key never appears in a URL. A 202 (still exporting) comes back as {pending: job}.
 */
export async function download(path, fallbackName) {
  const response = await fetchBlob(path);
  if (response.status === 202) return { pending: (await response.json()).job };
  const disposition = response.headers.get("content-disposition") || "";
  const match = /filename\*?=(?:UTF-8'')?"?([^";]+)"?/i.exec(disposition);
  const name = match ? decodeURIComponent(match[1]) : fallbackName;
  const url = URL.createObjectURL(await response.blob());
  const link = Object.assign(document.createElement("a"), { href: url, download: name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
  return { name };
}
