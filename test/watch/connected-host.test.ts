// One key per place a request goes (issue 28, item 3): the watch's budgets and rate-limit stop count
// by connectedHost(), so the spellings a pod author can choose for one address share one count.
import t from 'tap';
import { connectedHost } from '../../src/registry/hosts.ts';
import { RequestBudget } from '../../src/watch/budget.ts';

t.test('spellings of one address are one host; other hosts and ports stay apart', async (t) => {
  const loopback = [
    '127.0.0.1:18500',
    '127.0.0.1:018500',
    '2130706433:18500',
    '0x7f000001:18500',
    '0X7F000001:18500',
    '127.1:18500',
    '127.0.1:18500',
    '0177.0.0.1:18500',
    '0x7f.0.0.1:18500',
    '127.000.000.001:18500',
    '[::ffff:7f00:1]:18500',
    '[::FFFF:127.0.0.1]:18500',
  ];
  t.same(new Set(loopback.map(connectedHost)), new Set(['127.0.0.1:18500']));
  t.equal(connectedHost('Registry.Example.TEST.:443'), 'registry.example.test', "https's port and a trailing dot");
  t.equal(connectedHost('registry.example.test:80'), 'registry.example.test', "http's port");
  t.equal(connectedHost('[0:0:0:0:0:0:0:1]:5000'), '[::1]:5000');
  t.not(connectedHost('127.0.0.1:5000'), connectedHost('127.0.0.1:5001'), 'another port is another registry');
  t.not(connectedHost('127.0.0.2:5000'), connectedHost('127.0.0.1:5000'));
  t.not(connectedHost('[::1]:5000'), connectedHost('127.0.0.1:5000'), 'IPv6 loopback is another socket');
  t.equal(connectedHost('not a host'), 'not a host', 'what the URL parser refuses stays as written');
});

t.test('the budget and the rate-limit stop count every spelling against one registry', async (t) => {
  const limits: { host: string; remaining: number }[] = [];
  const budget = new RequestBudget({ perRegistry: 2, total: 5, rateLimitThreshold: 10, rateLimits: () => limits });
  budget.spend('127.0.0.1:5000'); // what the transport reports: url.host
  t.ok(budget.allows('2130706433:5000'));
  const place = budget.take('127.1:5000');
  t.ok(place, 'a second check may start');
  t.notOk(budget.allows('0x7f000001:05000'), 'one request made and one under way fill the budget of 2');
  place!();
  budget.spend('127.0.0.1:5000');
  t.notOk(budget.allows('127.0.0.1:005000'), 'spent');
  t.ok(budget.allows('127.0.0.1:5001'), 'another registry has its own');
  budget.spend('a.example.test');
  budget.spend('b.example.test');
  budget.spend('c.example.test');
  t.notOk(budget.allows('d.example.test'), 'five requests in all: no host is asked further');
  budget.reset();
  t.ok(budget.allows('127.0.0.1:5000'), 'a new round');
  limits.push({ host: '0x7f000001:5000', remaining: 3 });
  t.notOk(budget.allows('127.1:5000'), 'a rate limit reported under one spelling stops the others');
  budget.stop('127.0.0.1:5002');
  t.notOk(budget.allows('2130706433:5002'), 'and so does a rate-limited answer');
});
