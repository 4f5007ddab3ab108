import { describe, expect, it } from 'vitest';
import {
  listName,
  pluginEntry,
  primaryFile,
  withoutPlugin,
  withPlugin,
  wrapperScript,
} from '../../../src/commands/cni/conflist.js';
import { chainPlugin, type InstallFs } from '../../../src/commands/cni/install.js';

const calico = {
  name: 'k8s-pod-network',
  cniVersion: '1.0.0',
  plugins: [
    { type: 'calico', ipam: { type: 'calico-ipam' } },
    { type: 'portmap', capabilities: { portMappings: true } },
  ],
};
const file = (name: string, conf: unknown) => ({
  name,
  text: `${JSON.stringify(conf, null, 2)}\n`,
});
const ENTRY = pluginEntry({ flags: { 'proxy-port': 15001 } });

describe('primaryFile', () => {
  it('is the first valid file by name, as libcni orders them', () => {
    const files = [
      file('20-b.conflist', calico),
      { name: '05-broken.conflist', text: '{' },
      file('10-a.conf', { cniVersion: '0.3.1', name: 'a', type: 'bridge' }),
      file('00-notes.txt', calico),
      file('07-empty.conflist', { ...calico, plugins: [] }),
    ];
    expect(primaryFile(files)?.name).toBe('10-a.conf');
    expect(primaryFile([file('x.conflist', { type: 'bridge' })])).toBeUndefined();
  });
});

describe('withPlugin / withoutPlugin', () => {
  it('appends the plugin last, keeps every other key, and takes it out again', () => {
    const before = file('10-calico.conflist', calico);
    const chained = withPlugin(before, ENTRY);
    expect(JSON.parse(chained).plugins.map((p: { type: string }) => p.type)).toEqual([
      'calico',
      'portmap',
      'mesh-init-cni',
    ]);
    expect(JSON.parse(chained).plugins[2]).toEqual(ENTRY);
    const removed = withoutPlugin({ name: before.name, text: chained });
    expect(JSON.parse(removed)).toEqual(calico);
  });

  it('is unchanged text when the plugin is already there as wanted, and replaces an outdated entry', () => {
    const chained = { name: 'c.conflist', text: withPlugin(file('c.conflist', calico), ENTRY) };
    expect(withPlugin(chained, ENTRY)).toBe(chained.text);
    const updated = withPlugin(chained, pluginEntry({}));
    expect(
      JSON.parse(updated).plugins.filter((p: { type: string }) => p.type === 'mesh-init-cni'),
    ).toEqual([pluginEntry({})]);
    expect(withoutPlugin(file('c.conflist', calico))).toBe(file('c.conflist', calico).text);
  });

  it('a single-plugin .conf becomes a list, to be named .conflist', () => {
    const single = file('10-bridge.conf', {
      cniVersion: '0.4.0',
      name: 'br',
      type: 'bridge',
      bridge: 'cni0',
    });
    expect(JSON.parse(withPlugin(single, ENTRY))).toEqual({
      cniVersion: '0.4.0',
      name: 'br',
      plugins: [{ type: 'bridge', bridge: 'cni0' }, ENTRY],
    });
    expect(listName('10-bridge.conf')).toBe('10-bridge.conflist');
    expect(listName('10-bridge.conflist')).toBe('10-bridge.conflist');
  });
});

describe('wrapperScript', () => {
  it('starts Node and the bundle by absolute path, quoted', () => {
    expect(wrapperScript('/usr/bin/node', "/opt/it's/mesh-init-cni.cjs")).toBe(
      "#!/bin/sh\n# mesh-init's CNI plugin (written by mesh-init-cni install)\nexec '/usr/bin/node' '/opt/it'\\''s/mesh-init-cni.cjs' \"$@\"\n",
    );
  });
});

/** An in-memory directory with a write counter. */
function memoryFs(initial: Record<string, string>) {
  const files = new Map(Object.entries(initial));
  let writes = 0;
  const fs: InstallFs = {
    listDir: async (dir) =>
      [...files.keys()].filter((p) => p.startsWith(`${dir}/`)).map((p) => p.slice(dir.length + 1)),
    readFile: async (path) => {
      const text = files.get(path);
      if (text === undefined) throw new Error(`ENOENT ${path}`);
      return text;
    },
    writeFile: async (path, text) => {
      writes++;
      files.set(path, text);
    },
    remove: async (path) => {
      files.delete(path);
    },
    watch: () => () => {},
  };
  return { fs, files, writes: () => writes };
}

describe('chainPlugin (one pass of install, and of --watch)', () => {
  const log = () => {};

  it('chains, then keeps without writing again', async () => {
    const m = memoryFs({ '/d/10-calico.conflist': file('', calico).text });
    expect(await chainPlugin(m.fs, '/d', {}, log)).toBe('chained');
    expect(await chainPlugin(m.fs, '/d', {}, log)).toBe('kept');
    expect(m.writes()).toBe(1);
  });

  it('the primary rewriting its file without the plugin: the next pass puts it back', async () => {
    const m = memoryFs({ '/d/10-calico.conflist': file('', calico).text });
    await chainPlugin(m.fs, '/d', {}, log);
    m.files.set('/d/10-calico.conflist', file('', calico).text);
    expect(await chainPlugin(m.fs, '/d', {}, log)).toBe('chained');
    expect(m.files.get('/d/10-calico.conflist')).toContain('mesh-init-cni');
  });

  it('a .conf is replaced by its .conflist; a new primary takes the plugin from the old one', async () => {
    const m = memoryFs({
      '/d/20-bridge.conf': file('', { cniVersion: '0.4.0', name: 'b', type: 'bridge' }).text,
    });
    await chainPlugin(m.fs, '/d', {}, log);
    expect([...m.files.keys()]).toEqual(['/d/20-bridge.conflist']);
    m.files.set('/d/10-calico.conflist', file('', calico).text);
    expect(await chainPlugin(m.fs, '/d', {}, log)).toBe('chained');
    expect(m.files.get('/d/10-calico.conflist')).toContain('mesh-init-cni');
    expect(m.files.get('/d/20-bridge.conflist')).not.toContain('mesh-init-cni');
  });

  it('no configuration yet', async () => {
    expect(await chainPlugin(memoryFs({}).fs, '/d', {}, log)).toBe('no primary');
  });
});
