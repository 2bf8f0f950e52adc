import { KEY_PART_CHAR, templateParts } from './cache-key'

// One key namespace per cache: no request may write or read a key outside its own. URL keys
// are `METHOD:/path...`; a template fills its placeholders with escaped values (letters, digits,
// `-._~` and `%`: cache-key.ts), which can hold no separator. Two different templates of one
// cache could still make the same key from different values (`a{id}` and `ab{id}`: id `b1` and
// `1`), and a template that starts with placeholders could make a URL key (`{query.m}:/{query.p}`:
// `GET:/tasks`). Each template is checked, when its route registers, against the templates
// already on its cache and against the shape of URL keys: a template whose keys can meet
// another's is refused, naming both routes. Deciding that is deciding whether two simple
// patterns (literal characters and runs of value characters) have a word in common: a walk
// over pairs of positions.

/** One step of a pattern: a literal character, a run of value characters, or (URL keys) any characters. */
type Step = { literal: string } | { run: 'value' | 'upper' | 'any' }

/** A key pattern: steps, each optionally repeated (runs repeat; literals do not). */
interface Pattern { steps: Step[] }

const UPPER = /[A-Z]/

/** The keys a template can make. */
export function templatePattern (template: string): Pattern {
  const steps: Step[] = []
  for (const part of templateParts(template)) {
    if (part === null) steps.push({ run: 'value' })
    else for (const c of part) steps.push({ literal: c })
  }
  return { steps }
}

/** The keys a URL makes: `METHOD:/...`. */
export const URL_KEYS: Pattern = { steps: [{ run: 'upper' }, { literal: ':' }, { literal: '/' }, { run: 'any' }] }

/** A template written as a URL key (`GET:/items/{id}`) names URL keys on purpose. */
export function namesUrlKeys (template: string): boolean {
  return /^[A-Z]+:\//.test(template)
}

function accepts (step: Step, c: string): boolean {
  if ('literal' in step) return step.literal === c
  if (step.run === 'value') return KEY_PART_CHAR.test(c)
  if (step.run === 'upper') return UPPER.test(c)
  return true
}

/** Whether two patterns have a key in common. */
export function patternsMeet (a: Pattern, b: Pattern): boolean {
  // The characters worth trying: every literal of either, and one of each class that is not a literal.
  const alphabet = new Set<string>()
  for (const step of [...a.steps, ...b.steps]) if ('literal' in step) alphabet.add(step.literal)
  for (const c of ['A', 'a', '0', '-', '%', '\u0001']) alphabet.add(c)
  // A state is (i, j, ri, rj): the next step of each, and whether each is inside a run (it
  // has matched at least one character of step i / j, which may repeat or end).
  const seen = new Set<string>()
  const queue: Array<[number, number, boolean, boolean]> = [[0, 0, false, false]]
  while (queue.length > 0) {
    const [i, j, ri, rj] = queue.pop() as [number, number, boolean, boolean]
    const id = `${i},${j},${ri ? 1 : 0},${rj ? 1 : 0}`
    if (seen.has(id)) continue
    seen.add(id)
    // A run that has matched once may end here.
    if (ri) queue.push([i + 1, j, false, rj])
    if (rj) queue.push([i, j + 1, ri, false])
    if (i === a.steps.length && j === b.steps.length && !ri && !rj) return true
    if (i === a.steps.length || j === b.steps.length) continue
    const sa = a.steps[i]
    const sb = b.steps[j]
    for (const c of alphabet) {
      if (!accepts(sa, c) || !accepts(sb, c)) continue
      const [ni, nri] = 'literal' in sa ? [i + 1, false] : [i, true]
      const [nj, nrj] = 'literal' in sb ? [j + 1, false] : [j, true]
      queue.push([ni, nj, nri, nrj])
    }
  }
  return false
}

/**
 * Two placeholders with only value characters between them (`{a}{b}`, `{a}-{b}`) split one key
 * two ways: `x:{a}-{b}` makes `x:1-2-3` from a=1-2, b=3 and from a=1, b=2-3.
 */
function ambiguity (template: string): string | undefined {
  const parts = templateParts(template)
  let sinceLast: string | undefined
  for (const part of parts) {
    if (part !== null) {
      if (sinceLast !== undefined) sinceLast += part
      continue
    }
    if (sinceLast !== undefined && [...sinceLast].every((c) => KEY_PART_CHAR.test(c))) {
      return `${JSON.stringify(template)} has two placeholders with only ${sinceLast === '' ? 'nothing' : JSON.stringify(sinceLast)} between them, so one key could come from different values; set them apart with a character values cannot hold (: / # |)`
    }
    sinceLast = ''
  }
  return undefined
}

/** The key templates of the routes of each cache, to refuse one whose keys could meet another's. */
export class KeyTemplates {
  private readonly byCache = new Map<unknown, Array<{ template: string, label: string, pattern: Pattern }>>()

  /**
   * Registers `template` of route `label` on `cache`. Returns why it is refused, or undefined.
   * The same template on two routes names the same entries on purpose (two URLs of one resource).
   */
  add (cache: unknown, template: string, label: string): string | undefined {
    const ambiguous = ambiguity(template)
    if (ambiguous !== undefined) return ambiguous
    const pattern = templatePattern(template)
    if (!namesUrlKeys(template) && patternsMeet(pattern, URL_KEYS)) {
      return `${JSON.stringify(template)} can make a key of the form METHOD:/path, which URL keys have: a request could then write the entry of another URL; start it with a literal name (item:{id})`
    }
    let list = this.byCache.get(cache)
    if (list === undefined) {
      list = []
      this.byCache.set(cache, list)
    }
    for (const other of list) {
      if (other.template === template || !patternsMeet(pattern, other.pattern)) continue
      return `${JSON.stringify(template)} and the key ${JSON.stringify(other.template)} of ${other.label} (same cache) can make the same key from different values; set the placeholders apart with a character values cannot hold (: / # |), e.g. item:{id} and item:{id}:owner`
    }
    list.push({ template, label, pattern })
    return undefined
  }
}
