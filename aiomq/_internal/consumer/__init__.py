"""The reader's machinery: its state, fetching, commits, positions and outage watch.

`state.ReaderState` owns everything a reader knows; the other modules act on it:
`fetch` fills its buffer from the aiokafka consumer, `commits` commits offsets across
rebalances, `positions` answers offsets, lag and stats, `health` notices outages and
`stash` keeps the offsets waiting for the next flush. Nothing here imports `aiomq.reader`.
"""
