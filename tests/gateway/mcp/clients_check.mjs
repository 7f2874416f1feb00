// The official TypeScript MCP clients against an MCP endpoint serving the fixture tools: for each
// protocol revision, connect, list the tools, call `greet` and read its result.
//   @modelcontextprotocol/sdk 1.x: the session revisions 2024-11-05 .. 2025-11-25 (the version the
//     client asks for in `initialize` is set per run; the SDK accepts any it supports);
//   @modelcontextprotocol/client 2.x: 2026-07-28 (stateless, server/discover first).
// Usage: node clients_check.mjs <url> [<url> ...]     Exit status 0 when every revision worked.
// With several URLs (gateway replicas sharing one store), each HTTP request of a client goes to
// the next URL in turn, so one session's initialize, calls and DELETE land on different replicas.
import { Client as Client1 } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as Transport1 } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { Client as Client2, StreamableHTTPClientTransport as Transport2 } from '@modelcontextprotocol/client';

const urls = process.argv.slice(2).map((u) => new URL(u));
const url = urls[0];
let turn = 0;
// fetch, with the request sent to the next replica in turn, and the bearer token of
// ASYA_MCP_TOKEN when set.
const token = process.env.ASYA_MCP_TOKEN;
const rotate = (input, init) => {
  if (token) {
    const headers = new Headers(init?.headers);
    headers.set('Authorization', `Bearer ${token}`);
    init = { ...init, headers };
  }
  return fetch(urls.length > 1 ? urls[turn++ % urls.length] : input, init);
};
let failed = 0;

function check(revision, what, ok, detail) {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${revision}: ${what}${ok ? '' : ' -- ' + detail}`);
  if (!ok) failed++;
}

async function exercise(revision, client, negotiated) {
  check(revision, 'negotiated version', negotiated === revision, `got ${negotiated}`);
  const { tools } = await client.listTools();
  check(revision, 'tools/list has greet', tools.some((t) => t.name === 'greet'),
        JSON.stringify(tools.map((t) => t.name)));
  const result = await client.callTool({ name: 'greet', arguments: { name: 'World' } });
  const text = result.content?.find((c) => c.type === 'text')?.text;
  check(revision, 'tools/call greet', text === 'Hello, World!' && !result.isError,
        JSON.stringify(result));
}

for (const revision of ['2024-11-05', '2025-03-26', '2025-06-18', '2025-11-25']) {
  // Ask for `revision` in initialize (the SDK always asks for its newest otherwise).
  const fetchAs = async (input, init) => {
    if (init?.body && typeof init.body === 'string' && init.body.includes('"initialize"')) {
      const body = JSON.parse(init.body);
      if (body.method === 'initialize') body.params.protocolVersion = revision;
      init = { ...init, body: JSON.stringify(body) };
    }
    return rotate(input, init);
  };
  const client = new Client1({ name: 'asya-clients-check', version: '1.0.0' });
  const transport = new Transport1(url, { fetch: fetchAs });
  try {
    await client.connect(transport);
    await exercise(revision, client, transport.protocolVersion ?? revision);
    await transport.terminateSession().catch(() => {});
  } catch (e) {
    check(revision, 'session', false, e?.stack ?? String(e));
  } finally {
    await client.close().catch(() => {});
  }
}

{
  const revision = '2026-07-28';
  const client = new Client2({ name: 'asya-clients-check', version: '2.0.0' },
                             { versionNegotiation: { mode: { pin: revision } } });
  const transport = new Transport2(url, { fetch: rotate });
  try {
    await client.connect(transport);
    const negotiated = client.getNegotiatedProtocolVersion?.() ?? transport.protocolVersion;
    await exercise(revision, client, negotiated);
  } catch (e) {
    check(revision, 'stateless', false, e?.stack ?? String(e));
  } finally {
    await client.close().catch(() => {});
  }
}

console.log(failed === 0 ? 'clients: PASS' : `clients: ${failed} FAILED`);
process.exit(failed === 0 ? 0 : 1);
