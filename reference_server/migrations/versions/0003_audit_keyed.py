"""The audit log proves itself: a wider patient column (every refusal is recorded, whatever was asked), the stored
document's SHA-256 in its submission record, the point where the chain became keyed, and append-only enforced by
the database: triggers refuse UPDATE and DELETE of audit records, a record appended anywhere but at the head, the
head moved anywhere but one record forward, and any change to a stored document's bytes, hash or patient.

An existing database keeps its records as they are: `audit_head.keyed_from` is set to its head, records up to it
are verified under their old rule (unkeyed SHA-256), and the server's next start appends a keyed "rekey" record
that chains to them and holds a digest of the documents stored until then (audit.seal).

Revision ID: 0003_audit_keyed
Revises: 0002_dpia
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_audit_keyed"
down_revision = "0002_dpia"
branch_labels = None
depends_on = None

_SQLITE = [
    """CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
       BEGIN SELECT RAISE(ABORT, 'kroniker: the audit log is append-only (UPDATE refused)'); END""",
    """CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
       BEGIN SELECT RAISE(ABORT, 'kroniker: the audit log is append-only (DELETE refused)'); END""",
    """CREATE TRIGGER audit_events_at_head BEFORE INSERT ON audit_events
       WHEN NEW.seq IS NOT (SELECT seq + 1 FROM audit_head WHERE id = 1)
         OR NEW.prev_hash IS NOT (SELECT hash FROM audit_head WHERE id = 1)
       BEGIN SELECT RAISE(ABORT, 'kroniker: an audit record is appended at the head only'); END""",
    """CREATE TRIGGER audit_head_forward BEFORE UPDATE ON audit_head
       WHEN NEW.id IS NOT OLD.id OR NEW.seq IS NOT OLD.seq + 1 OR NEW.keyed_from IS NOT OLD.keyed_from
         OR NEW.hash IS NOT (SELECT hash FROM audit_events WHERE seq = NEW.seq)
       BEGIN SELECT RAISE(ABORT, 'kroniker: the audit head moves one appended record forward only'); END""",
    """CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head
       BEGIN SELECT RAISE(ABORT, 'kroniker: the audit head is not deleted'); END""",
    """CREATE TRIGGER documents_immutable BEFORE UPDATE ON documents
       WHEN NEW.id IS NOT OLD.id OR NEW.content IS NOT OLD.content OR NEW.content_sha256 IS NOT OLD.content_sha256
         OR NEW.patient_cpr IS NOT OLD.patient_cpr
       BEGIN SELECT RAISE(ABORT, 'kroniker: a stored document is immutable (bytes, hash, patient)'); END""",
    """CREATE TRIGGER documents_no_delete BEFORE DELETE ON documents
       BEGIN SELECT RAISE(ABORT, 'kroniker: a stored document is not deleted'); END""",
]
_SQLITE_TRIGGERS = ("audit_events_no_update", "audit_events_no_delete", "audit_events_at_head", "audit_head_forward",
                    "audit_head_no_delete", "documents_immutable", "documents_no_delete")

# No '%' in these statements: the driver would read it as a parameter. SET search_path FROM CURRENT: the
# functions read the tables of the schema they were made in, whatever the search_path of the session firing them.
_POSTGRES = [
    """CREATE FUNCTION kroniker_refuse() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
       BEGIN
         RAISE EXCEPTION USING MESSAGE = 'kroniker: ' || TG_OP || ' on ' || TG_TABLE_NAME || ' refused: '
                                         || TG_ARGV[0];
       END $$""",
    """CREATE FUNCTION kroniker_audit_at_head() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
       BEGIN
         IF NEW.seq IS DISTINCT FROM (SELECT seq + 1 FROM audit_head WHERE id = 1)
            OR NEW.prev_hash IS DISTINCT FROM (SELECT hash FROM audit_head WHERE id = 1) THEN
           RAISE EXCEPTION 'kroniker: an audit record is appended at the head only';
         END IF;
         RETURN NEW;
       END $$""",
    """CREATE FUNCTION kroniker_head_forward() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
       BEGIN
         IF NEW.id IS DISTINCT FROM OLD.id OR NEW.seq IS DISTINCT FROM OLD.seq + 1
            OR NEW.keyed_from IS DISTINCT FROM OLD.keyed_from
            OR NEW.hash IS DISTINCT FROM (SELECT hash FROM audit_events WHERE seq = NEW.seq) THEN
           RAISE EXCEPTION 'kroniker: the audit head moves one appended record forward only';
         END IF;
         RETURN NEW;
       END $$""",
    """CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
       FOR EACH ROW EXECUTE FUNCTION kroniker_refuse('the audit log is append-only')""",
    """CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
       FOR EACH STATEMENT EXECUTE FUNCTION kroniker_refuse('the audit log is append-only')""",
    """CREATE TRIGGER audit_events_at_head BEFORE INSERT ON audit_events
       FOR EACH ROW EXECUTE FUNCTION kroniker_audit_at_head()""",
    """CREATE TRIGGER audit_head_forward BEFORE UPDATE ON audit_head
       FOR EACH ROW EXECUTE FUNCTION kroniker_head_forward()""",
    """CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head
       FOR EACH ROW EXECUTE FUNCTION kroniker_refuse('the audit head is not deleted')""",
    """CREATE TRIGGER audit_head_no_truncate BEFORE TRUNCATE ON audit_head
       FOR EACH STATEMENT EXECUTE FUNCTION kroniker_refuse('the audit head is not deleted')""",
    """CREATE TRIGGER documents_immutable BEFORE UPDATE ON documents FOR EACH ROW
       WHEN (NEW.id IS DISTINCT FROM OLD.id OR NEW.content IS DISTINCT FROM OLD.content
             OR NEW.content_sha256 IS DISTINCT FROM OLD.content_sha256
             OR NEW.patient_cpr IS DISTINCT FROM OLD.patient_cpr)
       EXECUTE FUNCTION kroniker_refuse('a stored document is immutable (bytes, hash, patient)')""",
    """CREATE TRIGGER documents_no_delete BEFORE DELETE ON documents
       FOR EACH ROW EXECUTE FUNCTION kroniker_refuse('a stored document is not deleted')""",
    """CREATE TRIGGER documents_no_truncate BEFORE TRUNCATE ON documents
       FOR EACH STATEMENT EXECUTE FUNCTION kroniker_refuse('a stored document is not deleted')""",
]
_POSTGRES_TRIGGERS = (("audit_events", "audit_events_append_only"), ("audit_events", "audit_events_no_truncate"),
                      ("audit_events", "audit_events_at_head"), ("audit_head", "audit_head_forward"),
                      ("audit_head", "audit_head_no_delete"), ("audit_head", "audit_head_no_truncate"),
                      ("documents", "documents_immutable"), ("documents", "documents_no_delete"),
                      ("documents", "documents_no_truncate"))


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:  # SQLite does not enforce a VARCHAR's length, so only PostgreSQL needs the wider column
        op.alter_column("audit_events", "patient_cpr", type_=sa.String(64), existing_type=sa.String(10))
    op.add_column("audit_events", sa.Column("content_sha256", sa.String(64)))
    op.add_column("audit_head", sa.Column("keyed_from", sa.Integer, nullable=False, server_default="0"))
    op.execute(sa.text("UPDATE audit_head SET keyed_from = seq"))
    for statement in _POSTGRES if postgres else _SQLITE:
        op.get_bind().exec_driver_sql(statement)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        for table, trigger in _POSTGRES_TRIGGERS:
            op.execute(sa.text(f"DROP TRIGGER {trigger} ON {table}"))
        for function in ("kroniker_refuse", "kroniker_audit_at_head", "kroniker_head_forward"):
            op.execute(sa.text(f"DROP FUNCTION {function}()"))
    else:
        for trigger in _SQLITE_TRIGGERS:
            op.execute(sa.text(f"DROP TRIGGER {trigger}"))
    with op.batch_alter_table("audit_head") as batch:
        batch.drop_column("keyed_from")
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_column("content_sha256")
