"""A plugin that describes itself fully: a description, typed settings (one secret with a
default, one required), no watch. Each start appends a line to $DESCRIBED_STARTS when set, so
tests can count how often confd started it; with DESCRIBED_OLD=1 it answers Describe
UNIMPLEMENTED, as a plugin built before Describe does, and accepts any setting."""

import os

from plugin_sdk import Database, Setting, select_prefix, serve

if os.environ.get("DESCRIBED_STARTS"):
    with open(os.environ["DESCRIBED_STARTS"], "a") as log:
        log.write("started\n")


class Described(Database):
    name = "described"
    description = "a test plugin that says what it accepts"
    settings = (
        Setting("path", help="where the keys live", required=True),
        Setting("retries", int, 3, "how often to retry"),
        Setting("verbose", bool, False, "log each read"),
        Setting("token", default="builtin-token-value", help="API token", secret=True),
    )

    def configure(self, config):
        if os.environ.get("DESCRIBED_OLD"):
            self.options = dict(config)
            return
        super().configure(config)
        import logging

        logging.getLogger("described").warning("configured-marker")

    def get_values(self, keys):
        data = {"/app/path": str(self.options.get("path"))}
        return {k: v for k, v in data.items() if any(select_prefix(k, r) for r in keys)}


if os.environ.get("DESCRIBED_OLD"):
    from plugin_sdk.service import DatabaseService

    del DatabaseService.Describe  # the generated base class answers UNIMPLEMENTED

serve(Described())
