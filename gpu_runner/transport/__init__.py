"""How the executors reach their workers: one interface, several transports.

`interface.Workers` is all an executor sees (submit a pass, cancel it, wait for a
timed report, shut down); `threads`, `processes` and `ray` implement it, and
`recovery.Supervised` adds deadlines, restarts and reissues on top of any of them.
"""
