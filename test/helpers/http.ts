// HTTP answers as tests read them: the status, the headers and the parsed
// JSON body (or the text when it is not JSON).
export interface Answer<T = unknown> {
  status: number;
  headers: Headers;
  body: T;
}

/** One request with fetch, bounded in time; `token` adds a bearer header. */
export async function request<T = unknown>(
  url: string,
  options: { method?: string; token?: string; timeoutMs?: number } = {},
): Promise<Answer<T>> {
  const response = await fetch(url, {
    method: options.method ?? 'GET',
    headers: options.token ? { authorization: `Bearer ${options.token}` } : {},
    signal: AbortSignal.timeout(options.timeoutMs ?? 20_000),
  });
  const text = await response.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {}
  return { status: response.status, headers: response.headers, body: body as T };
}
