"""The pure core: records, parsing, rules and the rollup catalogue. No database, no web."""
