// An LLM agent: forwards a prompt to an OpenAI-compatible chat completions
// API and answers with the model's reply, whole or as a relayed token stream.
//
// Settings come from `env` (set them with `phalanx agent secrets`):
//   OPENAI_API_KEY   required
//   OPENAI_BASE_URL  default https://api.openai.com/v1 (any compatible server)
//   OPENAI_MODEL     default gpt-4o-mini

interface Env {
  OPENAI_API_KEY?: string;
  OPENAI_BASE_URL?: string;
  OPENAI_MODEL?: string;
}

interface Ask {
  prompt: string;
  stream?: boolean;
  model?: string;
}

const USAGE = `An LLM agent (OpenAI-compatible chat completions).

POST / with JSON {"prompt": "...", "stream"?: true, "model"?: "..."}
  -> {"answer": "...", "model": "..."}
  -> with "stream": true, the upstream's server-sent events as they arrive
`;

function fail(status: number, error: string, extra: Record<string, unknown> = {}): Response {
  return Response.json({ error, ...extra }, { status });
}

async function readAsk(request: Request): Promise<Ask | Response> {
  let body: unknown;
  try {
    body = await request.json();
  } catch {
    return fail(400, 'the body must be JSON: {"prompt": "..."}');
  }
  const ask = body as Partial<Ask> | null;
  if (typeof ask?.prompt !== "string" || ask.prompt.trim() === "") {
    return fail(400, '"prompt" must be a non-empty string');
  }
  if (ask.stream !== undefined && typeof ask.stream !== "boolean") return fail(400, '"stream" must be true or false');
  if (ask.model !== undefined && typeof ask.model !== "string") return fail(400, '"model" must be a string');
  return ask as Ask;
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    if (request.method === "GET") {
      return new Response(USAGE, { headers: { "content-type": "text/plain; charset=utf-8" } });
    }
    if (request.method !== "POST") return fail(405, "use GET for usage or POST to ask");
    const ask = await readAsk(request);
    if (ask instanceof Response) return ask;
    const key = env.OPENAI_API_KEY;
    if (!key) return fail(500, "OPENAI_API_KEY is not set");

    const base = (env.OPENAI_BASE_URL ?? "https://api.openai.com/v1").replace(/\/+$/, "");
    const model = ask.model ?? env.OPENAI_MODEL ?? "gpt-4o-mini";
    const stream = ask.stream === true;
    let upstream: Response;
    try {
      upstream = await fetch(`${base}/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
        body: JSON.stringify({ model, stream, messages: [{ role: "user", content: ask.prompt }] }),
      });
    } catch (e) {
      return fail(502, `cannot reach ${base}: ${String(e).split(key).join("[key]")}`);
    }
    if (!upstream.ok) {
      // The upstream's own message helps (a wrong model, a bad key), but it
      // may quote the key: never pass the key itself back.
      const detail = (await upstream.text()).slice(0, 2000).split(key).join("[key]");
      return fail(502, `the model API answered ${upstream.status}`, { upstream_status: upstream.status, detail });
    }
    if (stream) {
      // Relayed chunk by chunk: the client sees tokens as the model writes them.
      return new Response(upstream.body, {
        headers: { "content-type": "text/event-stream", "cache-control": "no-cache" },
      });
    }
    const data = (await upstream.json().catch(() => null)) as {
      model?: string;
      choices?: { message?: { content?: string } }[];
    } | null;
    const answer = data?.choices?.[0]?.message?.content;
    if (typeof answer !== "string") return fail(502, "the model API's answer has no choices[0].message.content");
    return Response.json({ answer, model: data?.model ?? model });
  },
};
