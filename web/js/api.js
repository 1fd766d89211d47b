// JSON over fetch, same origin (the session cookie goes along by itself).

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/**
 * Call the server. Resolves to the parsed JSON body (or null for 204); rejects with ApiError carrying
 * the HTTP status and the server's {"error"} message, or status 0 when the server cannot be reached.
 */
export async function api(method, path, body = undefined) {
  const init = { method, headers: { Accept: "application/json" }, credentials: "same-origin", cache: "no-store" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, "Cannot reach the server. Check the network and try again.");
  }
  if (response.status === 204) return null;
  let payload = null;
  try {
    payload = await response.json();
  } catch {
    payload = null;
  }
  if (!response.ok) {
    const message = payload && typeof payload.error === "string" ? payload.error : `The server answered ${response.status}.`;
    throw new ApiError(response.status, message);
  }
  return payload;
}
