"""Command line for support staff: handoff tickets, what the assistant could not answer, retention.

    python -m staff tickets list [--status open|claimed|resolved] [--limit N]
    python -m staff tickets show N
    python -m staff tickets claim N [--by NAME]
    python -m staff tickets resolve N
    python -m staff report [--limit N]
    python -m staff review [--kind unsure|did_not_help|handed_off] [--limit N]
    python -m staff label TEXT --intent INTENT|faq_gap --by NAME [--source LIST]
    python -m staff improvements export|status   (labels -> data/nlu/reviewed.yml, docs/faq-gaps.md)
    python -m staff purge [--days N]
    python -m staff users add NAME [--role agent|admin] [--password-stdin]
    python -m staff console [--host 127.0.0.1] [--port 5006]   (the web console; make run starts it)

It works on DATABASE_URL's database (default: var/assistant.db), like the assistant.
"""
