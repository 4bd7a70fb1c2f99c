"""Where audit events come from: files and standard input (``files``); the webhook receiver
and the log-file tail join them as the collector is built.
"""
