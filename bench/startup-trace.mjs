// Loaded with --import into `pullguard check IMAGE` by the startup benchmark: when the process
// made its first registry request, got its last answer, wrote its output and exited, in ms since
// it started (performance.now), as one line on stderr at exit. Through undici's diagnostics
// channels and a wrapped stdout: the command itself is not changed. Plain JavaScript, so that the
// preload costs as little as possible; its runs are reported apart from the timed ones.
import dc from 'node:diagnostics_channel';

const marks = { main: performance.now() };
dc.subscribe('undici:request:create', () => {
  marks.firstRequest ??= performance.now();
});
dc.subscribe('undici:request:headers', () => {
  marks.lastResponse = performance.now();
});
const write = process.stdout.write.bind(process.stdout);
process.stdout.write = (...args) => {
  marks.output ??= performance.now();
  return write(...args);
};
process.on('exit', () => {
  marks.exit = performance.now();
  process.stderr.write(`PULLGUARD_BENCH_MARKS ${JSON.stringify(marks)}\n`);
});
