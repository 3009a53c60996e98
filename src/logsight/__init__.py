"""logsight: log and trace analytics for ML systems on the Elasticsearch (ELK) stack.

The flow, one way:  adapters -> shipper -> engine (the seam) <- sources <- analysis -> findings
-> service / CLI / alerts.
"""

__version__ = "0.1.0"
