// The distribution/reference grammar (regexp.go), assembled from the same productions.
// Go's RE2 reports the submatches a backtracking engine would choose (leftmost-first), so these
// JavaScript expressions capture the same domain/path/tag/digest. None of the productions can
// split the same text two ways, so backtracking stays linear.

const alphanumeric = '[a-z0-9]+';
// one period, one or two underscores, or any run of dashes (the doc comment's [-]* is wrong)
const separator = '(?:[._]|__|[-]+)';
const domainComponent = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const domainName = `${domainComponent}(?:\\.${domainComponent})*`;
// no zone IDs, no IPv4-mapped forms
const ipv6Address = '\\[(?:[a-fA-F0-9:]+)\\]';
const host = `(?:${domainName}|${ipv6Address})`;
const optionalPort = '(?::[0-9]+)?';
const domainAndPort = host + optionalPort;
const pathComponent = `${alphanumeric}(?:${separator}${alphanumeric})*`;
const remoteName = `${pathComponent}(?:/${pathComponent})*`;
const name = `(?:${domainAndPort}/)?${remoteName}`;
// \w is ASCII-only in both Go and non-unicode JavaScript expressions
const tag = '[\\w][\\w.-]{0,127}';
const digest = '[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}';

/** groups: 1 name, 2 tag, 3 digest */
export const referenceRegexp = new RegExp(`^(${name})(?::(${tag}))?(?:@(${digest}))?$`);
/** groups: 1 domain, 2 path */
export const anchoredNameRegexp = new RegExp(`^(?:(${domainAndPort})/)?(${remoteName})$`);
export const anchoredDomainRegexp = new RegExp(`^${domainAndPort}$`);
export const anchoredTagRegexp = new RegExp(`^${tag}$`);
export const anchoredDigestRegexp = new RegExp(`^${digest}$`);
export const anchoredIdentifierRegexp = /^[a-f0-9]{64}$/;
