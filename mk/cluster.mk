# make cluster-demo / cluster-demo-stop: three PostgreSQL 15 nodes under
# Patroni and etcd on this machine (deploy/patroni/demo.sh; as root), for
# trying Verona on a database that survives the loss of its primary.
.PHONY: cluster-demo cluster-demo-stop
cluster-demo:
	@sh deploy/deps.sh
	@command -v patroni >/dev/null 2>&1 && command -v etcd >/dev/null 2>&1 || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends patroni etcd-server etcd-client >/dev/null; }
	sh deploy/patroni/demo.sh start

cluster-demo-stop:
	sh deploy/patroni/demo.sh stop
