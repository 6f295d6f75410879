# make cluster-demo / cluster-demo-status / cluster-demo-stop: three
# PostgreSQL 15 nodes under Patroni and etcd on this machine, loopback only
# (deploy/patroni/demo.sh; as root, the nodes run as postgres), for trying
# Verona on a database that survives the loss of its primary. Installs the
# Debian packages it needs when they are missing (deploy/patroni/README.md).
CLUSTER_PKGS := postgresql-15 patroni etcd-server etcd-client

.PHONY: cluster-demo cluster-demo-status cluster-demo-stop
cluster-demo:
	@missing=""; for p in $(CLUSTER_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  [ "$$(id -u)" -eq 0 ] || { echo "cluster-demo: missing Debian packages:$$missing (and it runs as root)" >&2; exit 1; }; \
	  echo "cluster-demo: installing$$missing" >&2; \
	  apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >&2; \
	fi
	@sh deploy/patroni/demo.sh start

cluster-demo-status:
	@sh deploy/patroni/demo.sh status

cluster-demo-stop:
	@sh deploy/patroni/demo.sh stop
