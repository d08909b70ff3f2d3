// The service's GraphQL API as the page uses it: queries, uploads with progress, live events.
// Every failure becomes an ApiError carrying the service's own sentences, so the page can show
// what went wrong instead of going blank.

const ENDPOINT = "/graphql";

export class ApiError extends Error {
  constructor(message, codes = [], data = null) {
    super(message);
    this.codes = codes;
    this.data = data;
  }

  has(code) {
    return this.codes.includes(code);
  }
}

// A bearer token, once a login gives one; the page works without one when the service runs
// without OIDC.
let token = null;

export function setToken(value) {
  token = value;
}

function authorization() {
  return token ? { Authorization: `Bearer ${token}` } : {};
}

function fromBody(body, status) {
  if (body && Array.isArray(body.errors) && body.errors.length) {
    const messages = [...new Set(body.errors.map((error) => error.message))];
    const codes = body.errors.map((error) => error.extensions?.code).filter(Boolean);
    if (status === 401) codes.push("UNAUTHENTICATED");
    return new ApiError(messages.join(" "), codes, body.data ?? null);
  }
  if (!body || typeof body !== "object" || !("data" in body)) {
    return new ApiError(`The service answered ${status} without a GraphQL result.`, ["HTTP"]);
  }
  return null;
}

export async function graphql(query, variables = {}) {
  let response;
  try {
    response = await fetch(ENDPOINT, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json", ...authorization() },
      body: JSON.stringify({ query, variables }),
    });
  } catch (error) {
    throw new ApiError(`The service cannot be reached (${error.message}).`, ["NETWORK"]);
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    // A 401 is a missing, expired or refused token, whatever the body.
    const codes = response.status === 401 ? ["HTTP", "UNAUTHENTICATED"] : ["HTTP"];
    throw new ApiError(`The service answered ${response.status} ${response.statusText}.`, codes);
  }
  const error = fromBody(body, response.status);
  if (error) throw error;
  return body.data;
}

const UPLOAD = `mutation Upload($file: Upload!, $data: JSON) {
  uploadImage(file: $file, data: $data) { ...Tile }
}`;

// One file as a GraphQL multipart request (XHR, since fetch reports no upload progress).
// `onProgress` gets the fraction sent; the promise settles with the stored image.
export function uploadFile(file, data, fragment, onProgress) {
  const xhr = new XMLHttpRequest();
  const promise = new Promise((resolve, reject) => {
    const form = new FormData();
    form.append("operations", JSON.stringify({ query: `${UPLOAD}\n${fragment}`, variables: { file: null, data } }));
    form.append("map", JSON.stringify({ 0: ["variables.file"] }));
    form.append("0", file, file.name);
    xhr.open("POST", ENDPOINT);
    // The service refuses multipart GraphQL without it, so that no other site can post uploads.
    xhr.setRequestHeader("Apollo-Require-Preflight", "true");
    for (const [name, value] of Object.entries(authorization())) xhr.setRequestHeader(name, value);
    xhr.responseType = "json";
    xhr.upload.onprogress = (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    };
    xhr.onload = () => {
      const error = fromBody(xhr.response, xhr.status);
      if (error) reject(error);
      else resolve(xhr.response.data.uploadImage);
    };
    xhr.onerror = () => reject(new ApiError("The upload was cut off: the service cannot be reached.", ["NETWORK"]));
    xhr.onabort = () => reject(new ApiError("Cancelled.", ["ABORTED"]));
    xhr.send(form);
  });
  return { promise, abort: () => xhr.abort() };
}

let client = null;

// Live events over graphql-transport-ws, through the vendored graphql-ws client (a classic
// script, so it is a global). `onState` hears "live" and "offline"; the client reconnects by
// itself, and the returned function ends the subscription.
export function subscribe(query, variables, { next, error, onState }) {
  const graphqlWs = globalThis.graphqlWs;
  if (!graphqlWs) {
    onState("unavailable");
    return () => {};
  }
  if (!client) {
    const url = new URL(ENDPOINT, location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    client = graphqlWs.createClient({
      url: url.href,
      // A browser cannot set headers on a WebSocket: the token goes in connection_init.
      connectionParams: () => authorization(),
      retryAttempts: Infinity,
      // A dropped connection comes back by itself; a refusal (bad request, no or a bad token)
      // would only be refused again.
      shouldRetry: (event) => !(event && [4400, 4401, 4403].includes(event.code)),
      lazy: true,
      on: {
        connected: () => onState("live"),
        closed: () => onState("offline"),
      },
    });
  }
  return client.subscribe(
    { query, variables },
    {
      next: (message) => {
        const problem = fromBody(message, 200);
        if (problem) error(problem);
        else next(message.data);
      },
      error: (problem) => error(problem instanceof Error ? problem : new ApiError(describeClose(problem), closeCodes(problem))),
      complete: () => {},
    },
  );
}

// The service closes 4401/4403 when connection_init carries no token or one it refuses.
function closeCodes(problem) {
  return problem && [4401, 4403].includes(problem.code) ? ["UNAUTHENTICATED"] : [];
}

function describeClose(problem) {
  if (Array.isArray(problem)) return problem.map((item) => item.message).join(" ");
  if (problem && typeof problem.code === "number") return `Live updates stopped (${problem.code} ${problem.reason || ""}).`;
  return "Live updates stopped.";
}
