"""`make bench`: latency, throughput, memory, start-up and training figures, side by side with a
server trained with the Chinese pipeline from Rasa's documentation. See bench/__main__.py."""
