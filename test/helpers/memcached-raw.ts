// Raw access to what MemcachedCache stores, following its documented layout (README, "memcached"):
// entries at `prefix + key` when the key is a plain Memcached key without variant, else at
// `prefix + 'sha256:' + base64url(sha256('e\0' + key + '\0' + variant))`; versions at
// `prefix + '!' + base64url(sha256('v\0' + name))` for names 'ns', 'gen\0' + key, 'tag\0' + tag;
// each entry value is [u16 length][namespace '\n' generation][envelope]. A version's value is
// its head, then `~previous` after a soft move, then `@time` when it was moved: entries hold heads.

import { createHash, randomBytes } from 'node:crypto'
import type memjs from 'memjs'

type Raw = memjs.Client<string | Buffer, Buffer | null>

const hash = (text: string): string => createHash('sha256').update(text).digest('base64url')
const safe = (key: string): boolean => key.length > 0 && key.length <= 250 && [...key].every((c) => c.charCodeAt(0) > 0x20 && c.charCodeAt(0) < 0x7f)

export function entryKey (keyPrefix: string, key: string, variant: string): string {
  if (variant === '' && safe(keyPrefix + key) && !key.startsWith('sha256:') && !key.startsWith('!')) return keyPrefix + key
  return keyPrefix + 'sha256:' + hash('e\u0000' + key + '\u0000' + variant)
}

export function versionKey (keyPrefix: string, name: string): string {
  return keyPrefix + '!' + hash('v\u0000' + name)
}

/** The version's value, made (as the cache would) when it does not exist yet. */
async function version (raw: Raw, key: string): Promise<string> {
  const { value } = await raw.get(key)
  if (value !== null) return headOf(value.toString('utf8'))
  await raw.add(key, randomBytes(8).toString('hex'), { expires: 0 })
  return headOf(String((await raw.get(key)).value))
}

function headOf (version: string): string {
  return version.split('@')[0].split('~')[0]
}

/** Writes `envelope` where the cache reads the entry of `key` and `variant`, under its current versions. */
export async function writeEntry (raw: Raw, keyPrefix: string, key: string, variant: string, envelope: Buffer): Promise<void> {
  const versions = Buffer.from(await version(raw, versionKey(keyPrefix, 'ns')) + '\n' + await version(raw, versionKey(keyPrefix, 'gen\u0000' + key)))
  const length = Buffer.alloc(2)
  length.writeUInt16BE(versions.length)
  await raw.set(entryKey(keyPrefix, key, variant), Buffer.concat([length, versions, envelope]), { expires: 0 })
}
