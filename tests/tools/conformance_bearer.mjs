// Preloaded into the MCP conformance suite (`node --import <this file> …`) so that its server scenarios run as a
// client holding an OAuth access token: every request to CATWALK_BEARER_ORIGIN carries
// `Authorization: Bearer $CATWALK_BEARER_TOKEN`. The suite sends its requests with fetch and with undici's
// `request`; both go through the process's global dispatcher, which is wrapped here. Requests to any other
// origin, and requests that already carry an Authorization header, pass unchanged.
import { getGlobalDispatcher, setGlobalDispatcher } from "undici";

const origin = process.env.CATWALK_BEARER_ORIGIN;
const credential = `Bearer ${process.env.CATWALK_BEARER_TOKEN}`;
if (!origin || !process.env.CATWALK_BEARER_TOKEN) {
  throw new Error("CATWALK_BEARER_ORIGIN and CATWALK_BEARER_TOKEN must be set");
}

function names(headers) {
  if (headers == null) return [];
  if (Array.isArray(headers)) {
    return headers.flat().filter((_, index) => index % 2 === 0).map((name) => String(name).toLowerCase());
  }
  return Object.keys(headers).map((name) => name.toLowerCase());
}

function withCredential(headers) {
  if (names(headers).includes("authorization")) return headers;
  if (headers == null) return { authorization: credential };
  if (Array.isArray(headers)) {
    return Array.isArray(headers[0]) ? [...headers, ["authorization", credential]] : [...headers, "authorization", credential];
  }
  return { ...headers, authorization: credential };
}

const addCredential = (dispatch) => (options, handler) => {
  const target = new URL(String(options.origin)).origin;
  return dispatch(target === origin ? { ...options, headers: withCredential(options.headers) } : options, handler);
};

setGlobalDispatcher(getGlobalDispatcher().compose(addCredential));
