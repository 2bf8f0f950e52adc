// A CacheStore over files, written the way a user would write one (README, "Custom stores"):
// one file per key, named by the key's SHA-256 (any key length works); the file holds the
// expiry time, the key itself (for deletePattern) and the value.

import { createHash } from 'node:crypto'
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { CacheStore } from '../../lib/index'

function globToRegExp (glob: string): RegExp {
  let source = '^'
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]
    if (c === '*') source += '[\\s\\S]*'
    else if (c === '?') source += '[\\s\\S]'
    else if (c === '\\' && i + 1 < glob.length) source += glob[++i].replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')
    else source += c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')
  }
  return new RegExp(source + '$')
}

interface Record { expires: number, key: string, value: Buffer }

function decode (data: Buffer): Record {
  const keyLength = data.readUInt32BE(8)
  return { expires: data.readDoubleBE(0), key: data.toString('utf8', 12, 12 + keyLength), value: data.subarray(12 + keyLength) }
}

export function fileStore (dir: string): CacheStore & { files: () => Promise<number> } {
  const path = (key: string): string => join(dir, createHash('sha256').update(key).digest('hex'))
  const read = async (file: string): Promise<Record | undefined> => {
    try {
      return decode(await readFile(file))
    } catch {
      return undefined
    }
  }
  return {
    async connect () { await mkdir(dir, { recursive: true }) },
    async get (key) {
      const record = await read(path(key))
      if (record === undefined || (record.expires !== 0 && record.expires <= Date.now())) return null
      return record.value
    },
    async set (key, value, ttl) {
      const keyBytes = Buffer.from(key)
      const header = Buffer.alloc(12)
      header.writeDoubleBE(ttl === 0 ? 0 : Date.now() + ttl * 1000, 0)
      header.writeUInt32BE(keyBytes.length, 8)
      await writeFile(path(key), Buffer.concat([header, keyBytes, value]))
    },
    async delete (key) { await rm(path(key), { force: true }) },
    async clear () { for (const name of await readdir(dir)) await rm(join(dir, name), { force: true }) },
    async deletePattern (pattern) {
      const matcher = globToRegExp(pattern)
      for (const name of await readdir(dir)) {
        const record = await read(join(dir, name))
        if (record !== undefined && matcher.test(record.key)) await rm(join(dir, name), { force: true })
      }
    },
    async files () { return (await readdir(dir)).length }
  }
}
