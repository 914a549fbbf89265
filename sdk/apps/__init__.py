"""The tools built on the engine: the `streamvideo` command line (`cli`) and the commands of its own
(`play` with its pygame `keymap` and mp4 `video` writer, `bench`, `prompts`).

`cli` dispatches every subcommand, those of the other packages too (`collect`, `train`, `eval`, `serve`,
`keys`), by module name, so nothing here is imported by the rest of the package.
"""
