"""The admin Client's machinery: how its calls are sent, retried and read.

`aiomq.admin.Client` checks a call's arguments and hands it to the function of the same
name in `topics` or `groups`. Nothing here imports `aiomq.admin`: the result types come
from `aiomq.cluster`.
"""
