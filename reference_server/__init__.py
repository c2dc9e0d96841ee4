"""kroniker.reference_server: shares MedCom documents as through DDS/sundhed.dk — accepts, validates, stores,
versions and serves them under the Danish access rules, and logs every access."""
