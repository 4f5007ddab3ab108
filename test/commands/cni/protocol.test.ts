import { describe, expect, it } from 'vitest';
import {
  CniError,
  errorResult,
  parseCniArgs,
  parseRequest,
  passThroughResult,
  versionForError,
  versionResult,
} from '../../../src/commands/cni/protocol.js';

const ADD_ENV = {
  CNI_COMMAND: 'ADD',
  CNI_CONTAINERID: 'abc',
  CNI_NETNS: '/var/run/netns/pod',
  CNI_IFNAME: 'eth0',
  CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web',
};
const PREV = {
  cniVersion: '1.0.0',
  interfaces: [{ name: 'eth0' }],
  ips: [{ address: '10.0.0.2/24' }],
};
const config = (extra: Record<string, unknown> = {}) =>
  JSON.stringify({ cniVersion: '1.0.0', name: 'net', type: 'mesh-init-cni', ...extra });

function failure(run: () => unknown): { code: number; message: string } {
  try {
    run();
  } catch (error) {
    if (error instanceof CniError) return { code: error.code, message: error.message };
    throw error;
  }
  throw new Error('did not fail');
}

describe('parseRequest', () => {
  it('reads the variables, CNI_ARGS and the configuration with its prevResult', () => {
    const request = parseRequest(ADD_ENV, config({ prevResult: PREV }));
    expect(request.command).toBe('ADD');
    expect(request.netns).toBe('/var/run/netns/pod');
    expect(request.args.get('K8S_POD_NAME')).toBe('web');
    expect(request.config.cniVersion).toBe('1.0.0');
    expect(request.config.prevResult).toEqual(PREV);
  });

  it.each([
    [{ ...ADD_ENV, CNI_COMMAND: undefined }, 4, 'CNI_COMMAND is not set'],
    [
      { ...ADD_ENV, CNI_COMMAND: 'ATTACH' },
      4,
      'invalid CNI_COMMAND: expected one of ADD, DEL, CHECK, VERSION, STATUS, GC, got "ATTACH"',
    ],
    [{ ...ADD_ENV, CNI_NETNS: '' }, 4, 'missing CNI_NETNS'],
    [
      { ...ADD_ENV, CNI_CONTAINERID: undefined, CNI_IFNAME: '' },
      4,
      'missing CNI_CONTAINERID, CNI_IFNAME',
    ],
    [{ ...ADD_ENV, CNI_NETNS: 'netns/pod' }, 4, 'invalid CNI_NETNS: expected the absolute path'],
    [{ ...ADD_ENV, CNI_ARGS: 'K8S_POD_NAME' }, 4, 'invalid CNI_ARGS'],
  ])('environment %j fails with code %i', (env, code, message) => {
    const got = failure(() => parseRequest(env, config()));
    expect(got.code).toBe(code);
    expect(got.message).toContain(message);
  });

  it.each([
    ['{', 6, 'cannot decode the network configuration'],
    ['[]', 6, 'expected a JSON object'],
    [config({ cniVersion: 1 }), 7, 'invalid cniVersion'],
    [config({ cniVersion: '0.2.0' }), 1, 'incompatible CNI version "0.2.0"'],
    [config({ cniVersion: '9.0.0' }), 1, 'incompatible CNI version "9.0.0"'],
  ])('configuration %s fails with code %i', (stdin, code, message) => {
    const got = failure(() => parseRequest(ADD_ENV, stdin));
    expect(got.code).toBe(code);
    expect(got.message).toContain(message);
  });

  it.each([
    ['CHECK', '0.3.1', 'it came with 0.4.0'],
    ['STATUS', '1.0.0', 'it came with 1.1.0'],
    ['GC', '1.0.0', 'it came with 1.1.0'],
  ])('%s under spec %s is an incompatible version', (command, version, message) => {
    const got = failure(() =>
      parseRequest({ ...ADD_ENV, CNI_COMMAND: command }, config({ cniVersion: version })),
    );
    expect(got).toEqual({
      code: 1,
      message: `CNI ${command} is not part of CNI spec ${version} (${message})`,
    });
  });

  it('DEL needs no CNI_NETNS; VERSION no configuration', () => {
    const del = parseRequest({ ...ADD_ENV, CNI_COMMAND: 'DEL', CNI_NETNS: '' }, config());
    expect(del.netns).toBeUndefined();
    expect(parseRequest({ CNI_COMMAND: 'VERSION' }, '').config.cniVersion).toBe('1.1.0');
    // Asked with a version it does not know, it still answers (the runtime asks to learn).
    expect(
      parseRequest({ CNI_COMMAND: 'VERSION' }, '{"cniVersion":"9.9.9"}').config.cniVersion,
    ).toBe('1.1.0');
  });
});

describe('results', () => {
  it('ADD passes the previous result through byte for byte as JSON, or reports an empty one', () => {
    const request = parseRequest(ADD_ENV, config({ prevResult: PREV }));
    expect(JSON.parse(passThroughResult(request.config))).toEqual(PREV);
    const first = parseRequest(ADD_ENV, config());
    expect(passThroughResult(first.config)).toBe('{"cniVersion":"1.0.0"}\n');
  });

  it('VERSION lists every version with chaining', () => {
    expect(JSON.parse(versionResult('1.0.0'))).toEqual({
      cniVersion: '1.0.0',
      supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'],
    });
  });

  it("errors are the spec's structure, in the request's version where there is one", () => {
    const error = new CniError(7, 'invalid mesh-init.flags.x', 'more');
    expect(JSON.parse(errorResult(error, '0.4.0'))).toEqual({
      cniVersion: '0.4.0',
      code: 7,
      msg: 'invalid mesh-init.flags.x',
      details: 'more',
    });
    expect(versionForError('{"cniVersion":"0.3.1"}')).toBe('0.3.1');
    expect(versionForError('{')).toBe('1.1.0');
  });

  it('CNI_ARGS splits on ";" and the first "="', () => {
    expect([...parseCniArgs('A=1; B=x=y ;;')]).toEqual([
      ['A', '1'],
      ['B', 'x=y'],
    ]);
  });
});
