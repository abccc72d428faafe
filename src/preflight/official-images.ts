// Docker Hub's official images (docker.io/library/*), to suggest "nginx" for "ngiinx". A shipped
// list, since asking Docker Hub's search API would cost a request and a dependency on its uptime.
export const OFFICIAL_IMAGES: readonly string[] = [
  'adminer', 'aerospike', 'almalinux', 'alpine', 'alt', 'amazoncorretto', 'amazonlinux', 'api-firewall',
  'arangodb', 'archlinux', 'backdrop', 'bash', 'bonita', 'buildpack-deps', 'busybox', 'caddy', 'cassandra',
  'chronograf', 'cirros', 'clearlinux', 'clefos', 'clickhouse', 'clojure', 'composer', 'convertigo', 'couchbase',
  'couchdb', 'crate', 'dart', 'debian', 'docker', 'drupal', 'eclipse-mosquitto', 'eclipse-temurin',
  'eggdrop', 'elasticsearch', 'elixir', 'emqx', 'erlang', 'fedora', 'flink', 'fluentd', 'friendica', 'gazebo',
  'gcc', 'geonetwork', 'ghost', 'golang', 'gradle', 'groovy', 'haproxy', 'haskell', 'haxe', 'hello-world',
  'hitch', 'httpd', 'hylang', 'ibm-semeru-runtimes', 'ibmjava', 'influxdb', 'irssi', 'jetty', 'joomla',
  'jruby', 'julia', 'kapacitor', 'kibana', 'kong', 'krakend', 'lightstreamer', 'liquibase', 'logstash',
  'mageia', 'mariadb', 'matomo', 'maven', 'mediawiki', 'memcached', 'mongo', 'mongo-express', 'monica',
  'mono', 'mysql', 'nats', 'neo4j', 'neurodebian', 'nextcloud', 'nginx', 'node', 'notary', 'odoo',
  'open-liberty', 'oraclelinux', 'orientdb', 'percona', 'perl', 'photon', 'php', 'php-zendserver',
  'phpmyadmin', 'plone', 'postfixadmin', 'postgres', 'pypy', 'python', 'qpid-proton', 'r-base', 'rabbitmq',
  'rakudo-star', 'redis', 'redmine', 'registry', 'rethinkdb', 'rocket.chat', 'rockylinux', 'ros', 'ruby',
  'rust', 'sapmachine', 'satosa', 'silverpeas', 'solr', 'sonarqube', 'spiped', 'storm', 'swift', 'swipl',
  'teamspeak', 'telegraf', 'tomcat', 'tomee', 'traefik', 'ubuntu', 'unit', 'varnish', 'websphere-liberty',
  'wordpress', 'xwiki', 'yourls', 'znc', 'zookeeper',
];
