# The man pages, built into $(OUT)/man (`make build` makes them, `make
# install` installs every file of MAN_PAGES): verona(8) and verona-worker(8)
# are hand-written and copied; verona.conf(5) is docs/man/verona.conf.5.in
# with its key list written by docs/man/mkconf.c from proto/config.c's
# table of keys, the one that parses the file. tests/man/check.sh checks
# them.
MAN_PAGES := $(OUT)/man/verona.8 $(OUT)/man/verona-worker.8 $(OUT)/man/verona.conf.5
MAN_MKCONF := $(OUT)/gen/mkconf

$(MAN_MKCONF): $(call obj,docs/man/mkconf.c) $(PROTO_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_BUILD) $(LDFLAGS) -o $@ $^ $(LIBS)

$(OUT)/man/verona.conf.5: docs/man/verona.conf.5.in $(MAN_MKCONF)
	@mkdir -p $(dir $@)
	$(MAN_MKCONF) docs/man/verona.conf.5.in > $@

$(filter %.8,$(MAN_PAGES)): $(OUT)/man/%.8: docs/man/%.8
	@mkdir -p $(dir $@)
	cp $< $@
