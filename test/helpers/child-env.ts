// The environment of a child process a test starts (node, tsc, npm, attw, the example app...).
// tap puts its process-info and coverage loader into NODE_OPTIONS and passes it on to every
// child: each then loaded it, collected V8 coverage of code that is not lib/ (dist/, tsc, npm)
// and wrote it out for tap to process, which cost npm test about a minute. Children run plain.

const TAP_LOADER = /\s*"?--import=\S*@tapjs\S*"?/g

/** process.env without tap's loader and coverage settings, plus `extra`. */
export function childEnv (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [name, value] of Object.entries(process.env)) {
    if (name === 'NODE_V8_COVERAGE' || name.startsWith('_TAPJS_PROCESSINFO')) continue
    if (name === 'NODE_OPTIONS') {
      const rest = (value ?? '').replace(TAP_LOADER, '').trim()
      if (rest !== '') env[name] = rest
      continue
    }
    env[name] = value
  }
  return { ...env, ...extra }
}
