"""kroniker.dpia: the DPO's register of processing, controller and processor roles, risks and measures."""
