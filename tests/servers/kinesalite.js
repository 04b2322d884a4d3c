#!/usr/bin/env node
'use strict'
// Starts kinesalite in memory on 127.0.0.1 only.
//   node kinesalite.js [port]      (port 0 or none = pick a free one)
// Prints `listening http://127.0.0.1:PORT` on stdout once it accepts
// connections. Env: KINESALITE_SHARD_LIMIT (default 1000),
// KINESALITE_STREAM_MS (CREATING/DELETING/UPDATING time, default 50).
// Stops on SIGTERM/SIGINT, and on stdin EOF when SHARDLINE_EXIT_ON_STDIN_EOF=1.
const kinesalite = require('kinesalite')

const port = Number(process.argv[2] || process.env.KINESALITE_PORT || 0)
const ms = Number(process.env.KINESALITE_STREAM_MS || 50)
const server = kinesalite({
  shardLimit: Number(process.env.KINESALITE_SHARD_LIMIT || 1000),
  createStreamMs: ms,
  deleteStreamMs: ms,
  updateStreamMs: ms,
})

server.on('error', (err) => {
  console.error(`kinesalite: ${err.stack || err}`)
  process.exit(1)
})

server.listen(port, '127.0.0.1', () => {
  console.log(`listening http://127.0.0.1:${server.address().port}`)
})

const stop = () => process.exit(0)
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
if (process.env.SHARDLINE_EXIT_ON_STDIN_EOF === '1') {
  process.stdin.on('data', () => {})
  process.stdin.on('end', stop)
  process.stdin.on('error', stop)
  process.stdin.resume()
}
