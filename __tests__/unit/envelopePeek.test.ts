import { lastBytes, PEEK_BYTES, peekEnvelope } from '../../src/transport/envelopePeek.js';

/** Far more than two windows: the head and the tail never overlap. */
const BIG = 'x'.repeat(4 * PEEK_BYTES);
const RESULT = `"result":{"content":[{"type":"text","text":"${BIG}"}]}`;
const PARAMS = `"params":{"level":"info","data":"${BIG}"}`;

/** The two ends of `message`, as a transport keeps them. */
function ends(message: string): [string, string] {
  const bytes = Buffer.from(message);
  return [bytes.subarray(0, PEEK_BYTES).toString('utf8'), lastBytes(Buffer.alloc(0), bytes, PEEK_BYTES).toString('utf8')];
}

describe('peekEnvelope on whole messages', () => {
  it.each<[string, string, string | number | undefined, boolean]>([
    ['id first', `{"id":7,"jsonrpc":"2.0",${RESULT}}`, 7, false],
    ['id after jsonrpc', `{"jsonrpc":"2.0","id":7,${RESULT}}`, 7, false],
    ['id after jsonrpc, with spaces', ` { "jsonrpc" : "2.0" , "id" : 7 , ${RESULT} }\n`, 7, false],
    ['id last', `{"jsonrpc":"2.0",${RESULT},"id":7}`, 7, false],
    ['id before a last jsonrpc', `{${RESULT},"id":7,"jsonrpc":"2.0"}`, 7, false],
    ['string id first', `{"jsonrpc":"2.0","id":"req-1",${RESULT}}`, 'req-1', false],
    ['string id last', `{${RESULT},"id":"req-1","jsonrpc":"2.0"}`, 'req-1', false],
    ['string id with escaped quotes, first', `{"jsonrpc":"2.0","id":"a\\"b\\\\",${RESULT}}`, 'a"b\\', false],
    ['string id with escaped quotes, last', `{${RESULT},"id":"a\\"b\\\\","jsonrpc":"2.0"}`, 'a"b\\', false],
    ['negative id', `{"jsonrpc":"2.0","id":-3,${RESULT}}`, -3, false],
    ['zero id, last', `{${RESULT},"id":0}`, 0, false],
    ['nested id inside result, first', `{"jsonrpc":"2.0","result":{"id":99,"text":"${BIG}"}}`, undefined, false],
    ['nested id inside result, last', `{"jsonrpc":"2.0","result":{"text":"${BIG}","id":99}}`, undefined, false],
    ['nested id and jsonrpc inside result, last', `{"result":{"text":"${BIG}","id":99,"jsonrpc":"2.0"}}`, undefined, false],
    ['nested id before the top-level one', `{"jsonrpc":"2.0","result":{"id":99,"text":"${BIG}"},"id":7}`, 7, false],
    ['"id" inside a string is not a key', `{"jsonrpc":"2.0","result":{"text":"\\"id\\":5}${BIG}\\"id\\":6}"}}`, undefined, false],
    ['method first (notification)', `{"method":"notifications/message","jsonrpc":"2.0",${PARAMS}}`, undefined, true],
    ['method after jsonrpc and id (request)', `{"jsonrpc":"2.0","id":4,"method":"sampling/createMessage",${PARAMS}}`, 4, true],
    ['method last (notification)', `{${PARAMS},"method":"notifications/message","jsonrpc":"2.0"}`, undefined, true],
    ['method last, then id and jsonrpc (request)', `{${PARAMS},"method":"roots/list","id":"s1","jsonrpc":"2.0"}`, 's1', true],
    ['id, then method last (request)', `{${PARAMS},"id":"s1","method":"roots/list"}`, 's1', true],
    ['nested method is not the envelope', `{"jsonrpc":"2.0","id":7,"result":{"method":"x","text":"${BIG}","method":"y"}}`, 7, false],
    ['no id at all', `{"jsonrpc":"2.0",${RESULT}}`, undefined, false],
    ['null id (an error without one)', `{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"${BIG}"}}`, undefined, false],
    ['fractional id, first', `{"jsonrpc":"2.0","id":1.5,${RESULT}}`, undefined, false],
    ['fractional id, last', `{${RESULT},"id":1.5,"jsonrpc":"2.0"}`, undefined, false],
    ['unsafe integer id, first', `{"jsonrpc":"2.0","id":9007199254740993,${RESULT}}`, undefined, false],
    ['unsafe integer id, last', `{${RESULT},"id":9007199254740993}`, undefined, false],
    ['infinite id', `{"jsonrpc":"2.0","id":1e400,${RESULT}}`, undefined, false],
    ['boolean id', `{"jsonrpc":"2.0","id":true,${RESULT}}`, undefined, false],
    ['multi-byte characters cut at both ends', `{"jsonrpc":"2.0","id":7,"result":{"text":"${'é€😀'.repeat(400)}"}}`, 7, false],
  ])('%s', (_name, message, id, fromServer) => {
    expect(peekEnvelope(...ends(message))).toEqual({ id, fromServer });
  });
});

describe('peekEnvelope on windows', () => {
  it.each<[string, string, string, string | number | undefined, boolean]>([
    ['head cut inside a string, id at the end', '{"jsonrpc":"2.0","result":{"text":"aaa', 'aaa"},"id":12}', 12, false],
    ['head cut inside the id', '{"jsonrpc":"2.0","id":"abc', '', undefined, false],
    ['head cut inside a numeric id', '{"jsonrpc":"2.0","id":12', '', undefined, false],
    ['head cut after the id, before its comma', '{"jsonrpc":"2.0","id":12 ', '', undefined, false],
    ['tail starting inside a string with escaped quotes', '{"jsonrpc":"2.0","result":{"text":"aaa', 'b\\",\\"id\\":5}"}}', undefined, false],
    ['tail starting inside a string, then the id', '{"jsonrpc":"2.0","result":{"text":"aaa', 'b\\"c"}, "id" : "x\\"y" , "jsonrpc" : "2.0" }\r\n\r\n', 'x"y', false],
    ['tail starting at "id" with its comma cut off', '{"jsonrpc":"2.0","result":{"text":"aaa', '"id":5}', undefined, false],
    ['head id wins over a tail id', '{"jsonrpc":"2.0","id":1,"result":{"text":"aaa', 'aaa"},"id":2}', 1, false],
    ['method in the head, id in the tail', '{"method":"sampling/createMessage","params":{"text":"aaa', 'aaa"},"jsonrpc":"2.0","id":3}', 3, true],
    ['empty ends', '', '', undefined, false],
    ['not JSON', 'hello', 'world', undefined, false],
  ])('%s', (_name, head, tail, id, fromServer) => {
    expect(peekEnvelope(head, tail)).toEqual({ id, fromServer });
  });
});

describe('lastBytes', () => {
  it('keeps the last n bytes across chunks and never shares memory with a chunk', () => {
    const chunks = ['abc', 'defgh', 'ij', 'klmnopqrstuvwxyz', 'z'].map((s) => Buffer.from(s));
    let tail: Buffer = Buffer.alloc(0);
    const seen: string[] = [];
    for (const chunk of chunks) {
      tail = lastBytes(tail, chunk, 6);
      seen.push(tail.toString());
    }
    expect(seen).toEqual(['abc', 'cdefgh', 'efghij', 'uvwxyz', 'vwxyzz']);
    const chunk = Buffer.from('0123456789');
    const kept = lastBytes(Buffer.alloc(0), chunk, 4);
    chunk.fill(0);
    expect(kept.toString()).toBe('6789');
  });
});
