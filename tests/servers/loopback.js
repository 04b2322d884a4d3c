'use strict'
// Preloaded with `node -r ./loopback.js` into servers that bind every
// interface (kinesis-mock binds 0.0.0.0 in its code): forces each TCP
// `listen` onto 127.0.0.1. Unix-socket and handle listens are left alone.
//
// With SHARDLINE_EXIT_ON_STDIN_EOF=1 the process also exits when its stdin
// closes, so a server started by a test that died without cleaning up (e.g.
// SIGKILL) does not outlive it: the test harness holds the other end of the pipe.
const net = require('net')

const HOST = '127.0.0.1'
const origListen = net.Server.prototype.listen

net.Server.prototype.listen = function (...args) {
  const cbIndex = args.findIndex((a) => typeof a === 'function')
  const cb = cbIndex >= 0 ? args[cbIndex] : undefined
  const rest = cbIndex >= 0 ? args.slice(0, cbIndex) : args
  const first = rest[0]
  let opts
  if (first !== null && typeof first === 'object' && !('_handle' in first) && !('fd' in first)) {
    if (first.path !== undefined) return origListen.apply(this, args)
    opts = Object.assign({}, first, { host: HOST })
  } else if (typeof first === 'number' || (typeof first === 'string' && /^\d+$/.test(first))) {
    // listen(port[, host][, backlog][, cb])
    opts = { port: Number(first), host: HOST }
    const backlog = rest.slice(1).find((a) => typeof a === 'number')
    if (backlog !== undefined) opts.backlog = backlog
  } else if (first === undefined) {
    opts = { port: 0, host: HOST }
  } else {
    return origListen.apply(this, args) // pipe path or handle
  }
  this.once('listening', () => {
    const a = this.address()
    if (a && typeof a === 'object') process.stderr.write(`loopback: listening ${a.address}:${a.port}\n`)
  })
  return cb ? origListen.call(this, opts, cb) : origListen.call(this, opts)
}

if (process.env.SHARDLINE_EXIT_ON_STDIN_EOF === '1') {
  process.stdin.on('data', () => {})
  process.stdin.on('end', () => process.exit(0))
  process.stdin.on('error', () => process.exit(0))
  process.stdin.resume()
}
