"""The Kopf operator: thin handlers that render desired children and apply them to the cluster."""
