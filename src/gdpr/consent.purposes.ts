/** The purposes a user can consent to (granular permissions, spec: consent_management). */
export const CONSENT_PURPOSES = [
  'personalization',
  'marketing_email',
  'analytics',
  'recipe_recommendations',
] as const;
export type ConsentPurpose = (typeof CONSENT_PURPOSES)[number];

export function isPurpose(value: string): value is ConsentPurpose {
  return (CONSENT_PURPOSES as readonly string[]).includes(value);
}
