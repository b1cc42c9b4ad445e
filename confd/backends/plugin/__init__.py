"""The plugin host: find, start, hand-shake with and supervise go-plugin compatible
database plugins. Imported only when a plugin (or an isolated built-in) is selected."""
